"""``loon ps``: this tool's containers, one line each, like ``docker compose ps``."""

from __future__ import annotations

from dataclasses import dataclass

from loon_supervisor.engine import containers
from loon_supervisor.engine.client import open_engine
from loon_supervisor.engine.records import ContainerSummary


def _ports(c: ContainerSummary) -> str:
    out = []
    for p in c.ports:
        if p.public_port:
            out.append(f"{p.ip}:{p.public_port}->{p.private_port}/{p.type}")
    return ", ".join(sorted(set(out))) or "-"


async def show_ps(name: str | None) -> int:
    """List the deployment's container (every deployment's when ``name`` is None)."""
    async with open_engine() as engine:
        found = await engine.list_ours(name)
    rows = [("DEPLOYMENT", "CONTAINER", "IMAGE", "STATE", "STATUS", "PORTS")]
    for c in sorted(found, key=lambda c: c.name or "?"):
        rows.append((c.labels.get(containers.DEPLOYMENT_LABEL) or c.name or "?",
                     c.id[:12], c.image, c.state, c.status, _ports(c)))
    # Plain columns, never truncated: ps output is read by scripts and narrow terminals.
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    return 0


@dataclass(frozen=True)
class PsOptions:
    """``loon ps``: one deployment, or None for every deployment (``--all``)."""

    name: str | None


async def run(opts: PsOptions) -> int:
    return await show_ps(opts.name)
