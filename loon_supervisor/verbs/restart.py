"""``loon restart [SERVICE...]``: the whole container, or single services inside it.

Services run under the image's own process manager, so restarting one is the image's job:
the image names its command in the ``org.loon.restart-command`` label (``{service}`` is
replaced), e.g. ``supervisorctl restart {service}``.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

import anyio
from rich.console import Console

from loon_supervisor.engine.base import Engine
from loon_supervisor.engine.client import open_engine
from loon_supervisor.errors import ConfigError, Problem
from loon_supervisor.lifecycle import restart_marker
from loon_supervisor.lifecycle.running import check_services, running_container
from loon_supervisor.lifecycle.state import lock_holder

RESTART_LABEL = "org.loon.restart-command"
FOLLOWER_CONFIRMS = 30.0  # how long `loon restart` waits for the follower to see it through


async def restart(name: str, services: list[str]) -> int:
    """Restart the container (within its StopTimeout), or the named services in it."""
    console = Console(soft_wrap=True)
    async with open_engine() as engine:
        container = await running_container(engine, name)
        cid = container.id
        if not services:
            return await restart_container(engine, name, cid, console)
        contract = await check_services(engine, container, services)
        template = container.labels.get(RESTART_LABEL)
        if not template:
            raise ConfigError([Problem("SERVICE", f"image {contract.image} declares no "
                                       f"{RESTART_LABEL} label, so single services cannot be "
                                       "restarted", "restart the whole container with "
                                       "`loon restart`")])
        failed = 0
        for svc in services:
            cmd = template.replace("{service}", shlex.quote(svc))
            code, out = await engine.run_capture(cid, ["sh", "-c", cmd])
            text = out.decode(errors="replace").strip()
            console.print(f"{svc}: {'restarted' if code == 0 else f'failed (exit {code})'}"
                          + (f": {text}" if text else ""), markup=False, highlight=False)
            failed |= code != 0
        return 1 if failed else 0


async def restart_container(engine: Engine, name: str, cid: str, console: Console
                            ) -> int:
    """Restart the whole container, telling its follower first (a planned stop, not an
    exit), so the deployment and its session files go on."""
    follower = lock_holder(name)
    restart_marker.request(name, cid)
    console.print(f"restarting container {name} ({cid[:12]})...")
    try:
        await engine.restart(cid)
    except BaseException:
        restart_marker.clear(name, cid)
        raise
    if follower:
        with anyio.move_on_after(FOLLOWER_CONFIRMS):
            while restart_marker.pending(name, cid) is not None:
                await anyio.sleep(0.1)
        if restart_marker.pending(name, cid) is None:
            console.print(f"restarted {name}; its follower (pid {follower}) continues the "
                          "same session files from where it was")
        else:
            console.print(f"restarted {name}; its follower (pid {follower}) has not confirmed "
                          f"it within {FOLLOWER_CONFIRMS:.0f}s: see out.log of the session "
                          "and `loon status`")
    else:
        restart_marker.clear(name, cid)
        console.print(f"restarted {name}; nobody follows it (no background logger): "
                      "`loon attach` writes its logs again")
    return 0


@dataclass(frozen=True)
class RestartOptions:
    """``loon restart``: the deployment, and services inside it (none: the whole container)."""

    name: str
    services: list[str]


async def run(opts: RestartOptions) -> int:
    return await restart(opts.name, opts.services)
