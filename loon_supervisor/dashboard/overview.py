"""The deployment at a glance: exactly what ``loon status`` gathers
(:func:`loon_supervisor.verbs.status.gather_status`), plus each service's last line and a
sparkline of its lines per minute."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from loon_supervisor.dashboard.rates import RATES_KEY
from loon_supervisor.dashboard.render import html
from loon_supervisor.dashboard.security import current, page
from loon_supervisor.deploy.app import SETTINGS_KEY
from loon_supervisor.errors import LoonError, operator_error
from loon_supervisor.lifecycle.identity import resolve
from loon_supervisor.streams.follow import last_lines
from loon_supervisor.verbs.status import ServiceRow, StatusReport, gather_status


def deployment_name(request: web.Request) -> str:
    return resolve(request.app[SETTINGS_KEY].config_file).name


async def report_of(request: web.Request) -> tuple[StatusReport | None, str | None]:
    """The status report, or None and the one-sentence reason it could not be had."""
    try:
        return await gather_status(deployment_name(request),
                                   request.app[SETTINGS_KEY].config_file), None
    except (LoonError, OSError) as exc:
        return None, str(operator_error(exc) if isinstance(exc, LoonError) else exc)


@dataclass
class Row:
    service: ServiceRow
    last: str
    spark: str  # SVG points, "" when there is no history yet
    per_minute: list[int]


def sparkline(counts: list[int], width: int = 120, height: int = 24) -> str:
    """SVG polyline points for counts (oldest first)."""
    if len(counts) < 2:
        return ""
    top = max(counts) or 1
    step = width / (len(counts) - 1)
    return " ".join(f"{i * step:.1f},{height - 1 - (c / top) * (height - 2):.1f}"
                    for i, c in enumerate(counts))


def rows(report: StatusReport, request: web.Request) -> list[Row]:
    rates = request.app[RATES_KEY]
    out = []
    for svc in report.services:
        last = last_lines(svc.log_path, 1) if svc.log_path else []
        counts = rates.per_minute(svc.log_path) if svc.log_path else []
        out.append(Row(svc, last[0][:300] if last else "", sparkline(counts), counts))
    return out


@page
async def overview(request: web.Request) -> web.StreamResponse:
    report, error = await report_of(request)
    if report is not None and report.running:
        request.app[RATES_KEY].watch([s.log_path for s in report.services
                                      if s.log_path is not None])
    return html("overview.html", session=current(request), report=report, error=error,
                rows=rows(report, request) if report else [],
                name=deployment_name(request))


def session_file(report: StatusReport | None, service: str) -> Path | None:
    if report is None:
        return None
    for row in report.services:
        if row.name == service:
            return row.log_path
    return None
