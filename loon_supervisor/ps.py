"""``loon ps``: this tool's containers, one line each, like ``docker compose ps``."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from loon_supervisor.engine import containers
from loon_supervisor.engine.client import open_engine


def _ports(c: dict) -> str:
    out = []
    for p in c.get("Ports") or []:
        if p.get("PublicPort"):
            out.append(f"{p.get('IP', '')}:{p['PublicPort']}->{p['PrivatePort']}/{p['Type']}")
    return ", ".join(sorted(set(out))) or "-"


async def show_ps(name: str | None) -> int:
    """List the deployment's container (every deployment's when ``name`` is None)."""
    console = Console(soft_wrap=True)
    async with open_engine() as docker:
        found = await containers.list_ours(docker, name)
    table = Table("deployment", "container", "image", "state", "status", "ports", box=None)
    for c in sorted(found, key=lambda c: c.get("Names", ["?"])[0]):
        table.add_row(((c.get("Labels") or {}).get(containers.DEPLOYMENT_LABEL)
                       or c.get("Names", ["?"])[0].lstrip("/")),
                      c["Id"][:12], c.get("Image", ""), c.get("State", ""),
                      c.get("Status", ""), _ports(c))
    console.print(table)
    return 0
