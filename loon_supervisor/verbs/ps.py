"""``loon ps``: this tool's containers, one line each, like ``docker compose ps``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from loon_supervisor.engine import containers
from loon_supervisor.engine.client import open_engine


def _ports(c: dict[str, Any]) -> str:
    out = []
    for p in c.get("Ports") or []:
        if p.get("PublicPort"):
            out.append(f"{p.get('IP', '')}:{p['PublicPort']}->{p['PrivatePort']}/{p['Type']}")
    return ", ".join(sorted(set(out))) or "-"


async def show_ps(name: str | None) -> int:
    """List the deployment's container (every deployment's when ``name`` is None)."""
    async with open_engine() as engine:
        found = await engine.list_ours(name)
    rows = [("DEPLOYMENT", "CONTAINER", "IMAGE", "STATE", "STATUS", "PORTS")]
    for c in sorted(found, key=lambda c: c.get("Names", ["?"])[0]):
        rows.append((((c.get("Labels") or {}).get(containers.DEPLOYMENT_LABEL)
                      or c.get("Names", ["?"])[0].lstrip("/")),
                     c["Id"][:12], c.get("Image", ""), c.get("State", ""),
                     c.get("Status", ""), _ports(c)))
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
