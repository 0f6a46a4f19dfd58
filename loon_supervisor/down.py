"""``-D``: stop this deployment's background logger and container, with or without a valid
config (the deployment's name is read leniently, with environment overrides, by
:mod:`loon_supervisor.identity`)."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from loon_supervisor.detach import stop_logger
from loon_supervisor.engine import containers
from loon_supervisor.engine.client import open_engine
from loon_supervisor.identity import resolve


async def down(config_file: Path | None, name: str | None = None) -> int:
    """Stop and remove this deployment (and its background logger). Works without config."""
    console = Console(soft_wrap=True)
    name = resolve(config_file, name).name
    stopped_logger = await stop_logger(name, console)
    async with open_engine() as docker:
        found = await containers.list_ours(docker, name)
        for c in found:
            cid = c["Id"]
            if c.get("State") == "running":
                console.print(f"stopping container {name} ({cid[:12]})...")
                await containers.stop(docker, cid)
            await containers.remove(docker, cid)
            console.print(f"removed container {name} ({cid[:12]})")
    if not found and not stopped_logger:
        console.print(f"nothing to stop: no container of deployment '{name}' exists")
    return 0
