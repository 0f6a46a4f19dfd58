"""Doctor on demand, deploy history, and the actions (redeploy, cancel, restart one
service). Each action is asked for on a confirmation page and posted with the session's
CSRF token (security.action); each is recorded in out.log with who did it (record.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import anyio
from aiohttp import web

from loon_supervisor.dashboard.logs import NAME_RE
from loon_supervisor.dashboard.overview import report_of
from loon_supervisor.dashboard.record import record
from loon_supervisor.dashboard.render import html
from loon_supervisor.dashboard.security import action, current, page, see_other
from loon_supervisor.deploy.app import RUNNER_KEY, SETTINGS_KEY
from loon_supervisor.deploy.runner import (
    DEPLOY_ID_PATTERN,
    DeployBusy,
    DeployRecord,
    DeployRunner,
    NotActive,
)
from loon_supervisor.errors import LoonError, operator_error

RESTART_TIMEOUT_S = 300.0
LOG_TAIL_BYTES = 256 * 1024
_doctor_lock = anyio.Lock()


def history(runner: DeployRunner) -> list[DeployRecord]:
    """The deploys the runner keeps, newest first."""
    return list(reversed(list(runner._records.values())))


def deploy_log(record: DeployRecord) -> tuple[str, list[str]]:
    """The end of the deploy's log (invalid UTF-8 replaced) and the phases it went through."""
    path = record.log_dir / "deploy.log"
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, 2)
            fh.seek(max(0, size - LOG_TAIL_BYTES))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return "", []
    phases: list[str] = []
    for line in text.splitlines():
        _, found, phase = line.partition(" phase: ")
        if found and phase.strip() and phase.strip() not in phases:
            phases.append(phase.strip())
    return text, phases


@page
async def doctor_page(request: web.Request) -> web.StreamResponse:
    return html("doctor.html", session=current(request), verdicts=None, error=None)


@action(viewer=True)
async def run_doctor(request: web.Request) -> web.StreamResponse:
    from loon_supervisor.doctor.runner import diagnose

    if _doctor_lock.locked():
        return html("doctor.html", 409, session=current(request), verdicts=None,
                    error="doctor is already running for someone; try again in a moment")
    async with _doctor_lock:
        try:
            verdicts = await diagnose(request.app[SETTINGS_KEY].config_file)
            error = None
        except (LoonError, OSError) as exc:
            verdicts, error = None, str(operator_error(exc) if isinstance(exc, LoonError)
                                        else exc)
    return html("doctor.html", session=current(request), verdicts=verdicts, error=error)


@page
async def deploys_page(request: web.Request) -> web.StreamResponse:
    return html("deploys.html", session=current(request),
                deploys=history(request.app[RUNNER_KEY]))


@page
async def deploy_page(request: web.Request) -> web.StreamResponse:
    rec = request.app[RUNNER_KEY].get(request.match_info["deploy_id"])
    if rec is None:
        raise web.HTTPNotFound()
    text, phases = deploy_log(rec)
    return html("deploy.html", session=current(request), d=rec, log=text, phases=phases)


CONFIRM = {
    "redeploy": ("Redeploy Loon now?", "Redeploy", "/dashboard/actions/redeploy"),
    "cancel": ("Cancel deploy {arg}?", "Cancel the deploy", "/dashboard/actions/cancel/{arg}"),
    "restart": ("Restart service {arg}?", "Restart {arg}", "/dashboard/actions/restart/{arg}"),
}


@page
async def confirm(request: web.Request) -> web.StreamResponse:
    what = request.match_info["what"]
    arg = request.match_info.get("arg", "")
    if what not in CONFIRM or (arg and not NAME_RE.match(arg)):
        raise web.HTTPNotFound()
    question, button, target = CONFIRM[what]
    return html("confirm.html", session=current(request), question=question.format(arg=arg),
                button=button.format(arg=arg), target=target.format(arg=arg), extra={})


@action
async def redeploy(request: web.Request) -> web.StreamResponse:
    runner = request.app[RUNNER_KEY]
    try:
        rec = runner.submit()
    except DeployBusy as busy:
        return html("result.html", 409, session=current(request), ok=False,
                    message=f"deploy {busy.running.id} is {busy.running.status}; wait for it "
                    "or cancel it", link=f"/dashboard/deploys/{busy.running.id}")
    except OSError as exc:
        return html("result.html", 503, session=current(request), ok=False,
                    message=f"cannot create the deploy's directory: {exc.strerror or exc}",
                    link="/dashboard/deploys")
    record(request, f"redeploy {rec.id} started")
    return see_other(f"/dashboard/deploys/{rec.id}")


@action
async def cancel(request: web.Request) -> web.StreamResponse:
    deploy_id = request.match_info["deploy_id"]
    try:
        rec = request.app[RUNNER_KEY].cancel(deploy_id, by=f"{current(request).who} "
                                             "from the dashboard")
    except NotActive:
        return html("result.html", 409, session=current(request), ok=False,
                    message=f"deploy {deploy_id} has already finished",
                    link=f"/dashboard/deploys/{deploy_id}")
    if rec is None:
        raise web.HTTPNotFound()
    record(request, f"deploy {deploy_id} cancelled")
    return see_other(f"/dashboard/deploys/{deploy_id}")


@action
async def restart(request: web.Request) -> web.StreamResponse:
    service = request.match_info["service"]
    report, error = await report_of(request)
    known = [s.name for s in report.services] if report is not None else []
    if service not in known:
        return html("result.html", 404, session=current(request), ok=False,
                    message=error or f"{service} is not a service of the running deployment",
                    link="/dashboard/")
    record(request, f"restart of service {service} requested")
    config: Path = request.app[SETTINGS_KEY].config_file
    cmd = [sys.executable, "-m", "loon_supervisor", "restart", service, "--config-file",
           str(config)]
    env = dict(os.environ, NO_COLOR="1", TERM="dumb")
    try:
        with anyio.fail_after(RESTART_TIMEOUT_S):
            done = await anyio.run_process(cmd, check=False, stdin=subprocess.DEVNULL,
                                           stderr=subprocess.STDOUT, env=env)
        output, ok = done.stdout.decode("utf-8", "replace"), done.returncode == 0
    except TimeoutError:
        output, ok = f"no answer within {RESTART_TIMEOUT_S:.0f} s", False
    except OSError as exc:
        output, ok = f"cannot start loon restart: {exc.strerror or exc}", False
    record(request, f"restart of service {service} {'done' if ok else 'FAILED'}")
    return html("result.html", 200 if ok else 500, session=current(request), ok=ok,
                message=f"restart of {service} {'done' if ok else 'failed'}", output=output,
                link="/dashboard/")


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_get("/dashboard/doctor", doctor_page)
    r.add_post("/dashboard/doctor", run_doctor)
    r.add_get("/dashboard/deploys", deploys_page)
    r.add_get("/dashboard/deploys/{deploy_id:" + DEPLOY_ID_PATTERN + "}", deploy_page)
    r.add_get("/dashboard/confirm/{what}", confirm)
    r.add_get("/dashboard/confirm/{what}/{arg}", confirm)
    r.add_post("/dashboard/actions/redeploy", redeploy)
    r.add_post("/dashboard/actions/cancel/{deploy_id:" + DEPLOY_ID_PATTERN + "}", cancel)
    r.add_post("/dashboard/actions/restart/{service}", restart)
