"""``down`` (``build.py -D``): stop this deployment's follower (background logger or
foreground ``up``) and its container, with or without a valid config (the deployment's name
is read leniently).

Whoever holds the deployment's lock is asked to stop, so it collects the last bytes itself.
When nobody holds it (the logger died), ``down`` takes the lock and
:func:`~loon_supervisor.lifecycle.run.remove_deployment` collects the bytes the dead
logger missed into its session before removing the container. Every engine call is bounded: a hung
engine gives one sentence and exit 1.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass

import anyio
from rich.console import Console

from loon_supervisor.engine.base import Engine
from loon_supervisor.engine.client import open_engine
from loon_supervisor.lifecycle import state as statefile
from loon_supervisor.lifecycle.control import Control
from loon_supervisor.lifecycle.deployment import ENGINE_GRACE
from loon_supervisor.lifecycle.logger_process import stop_logger
from loon_supervisor.lifecycle.removal import remove_swarm_services
from loon_supervisor.lifecycle.run import remove_deployment
from loon_supervisor.lifecycle.state import DeploymentLock, lock_holder
from loon_supervisor.sinks.reporter import Reporter
from loon_supervisor.sinks.session import Session


async def down(name: str) -> int:
    """Stop and remove this deployment (and its follower). Works without config (the front
    ends resolve the name: lifecycle/identity.py)."""
    console = Console(soft_wrap=True)
    say = Reporter(None, console)  # down has no session of its own: the terminal
    stopped_logger = await stop_logger(name, say)
    lock = DeploymentLock.acquire(name, wait=2.0)
    if lock is None:
        console.print(f"deployment '{name}' is still followed by pid {lock_holder(name)}; "
                      "stop that process, then run this again")
        return 1
    try:
        with anyio.move_on_after(ENGINE_GRACE) as scope:
            async with open_engine() as engine:
                scope.deadline = anyio.current_time() + 3600  # the steps bound themselves
                await _collect_swarm(engine, name, say)
                swarm_found = await remove_swarm_services(engine, name, say)
                code, found = await remove_deployment(engine, name, say)
                found = found or swarm_found
        if scope.cancelled_caught:
            console.print(f"the Docker engine did not answer within {ENGINE_GRACE:.0f}s; "
                          "check it (`docker info`) and run this again")
            return 1
    finally:
        lock.release()
    if not found and not stopped_logger:
        console.print(f"nothing to stop: no container of deployment '{name}' exists")
    return code


async def _collect_swarm(engine: Engine, name: str, say: Reporter) -> None:
    """A swarm deployment whose logger died: its tasks' files are completed from where the
    logger stopped (each file's size) while the services stop, then the services go."""
    state = statefile.load(name)
    if state is None or not state.swarm or not state.session.is_dir():
        return
    if not await engine.swarm.active() or not await engine.swarm.ours(name):
        statefile.forget(name, state.cid)
        return
    from loon_supervisor.swarm.up import follow_swarm

    say(f"nobody follows '{name}' now: collecting each task's last bytes into "
        f"{state.session} while the services stop")
    control = Control()
    control.request_stop(signal.SIGTERM)
    with Session(state.session, say.console) as session:
        outcome = await follow_swarm(engine, state, session, control)
    if outcome.removed:
        statefile.forget(name, state.cid)


@dataclass(frozen=True)
class DownOptions:
    """``loon down`` / ``build.py -D``: the deployment (its name resolved by the front end)."""

    name: str


async def run(opts: DownOptions) -> int:
    return await down(opts.name)
