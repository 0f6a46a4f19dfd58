"""Removing a deployment whose follower is gone (``down``, ``up --replace``, recreate):
with the lock held, a :class:`~loon_supervisor.lifecycle.deployment.Deployment` adopts each
container, stops it, collects the bytes the dead follower missed, and removes it."""

from __future__ import annotations

from pathlib import Path

import anyio
from rich.console import Console

from loon_supervisor.engine.base import ContainerEngine, Engine
from loon_supervisor.lifecycle import state as statefile
from loon_supervisor.lifecycle.control import Control
from loon_supervisor.lifecycle.deployment import ENGINE_GRACE, NO_STREAMS, Deployment
from loon_supervisor.paths import build_files_dir
from loon_supervisor.sinks.reporter import Reporter
from loon_supervisor.sinks.session import EventLog
from loon_supervisor.streams.sources.choice import Sources, forget_host_dir, recorded


async def remove_swarm_services(engine: Engine, name: str, console: Console) -> bool:
    """Swarm mode: remove the deployment's services first (else Swarm would restart the
    task containers removed next); whether there were any."""

    if not await engine.swarm.active():
        return False
    found = await engine.swarm.ours(name)
    for service in found:
        svc = service.name
        await engine.swarm.remove_one(svc)
        console.print(f"removed swarm service {svc}")
    return bool(found)


async def remove_deployment(engine: ContainerEngine, name: str, console: Console
                            ) -> tuple[int, bool]:
    """With the lock held: stop, collect what a dead follower missed, remove. (exit code,
    whether a container was found)."""
    state = statefile.load(name)
    control = Control(say=Reporter(None, console))
    if state is None and statefile.unreadable(name):
        console.print(f"the state file {statefile.state_path(name)} cannot be read; the "
                      "container is stopped and removed without collecting the log bytes "
                      "its follower had not read (they stay in no session file)")
    with anyio.CancelScope(shield=True) as scope:
        scope.deadline = anyio.current_time() + ENGINE_GRACE
        found = await engine.list_ours(name)
    if scope.cancelled_caught:
        console.print(f"the Docker engine did not answer within {ENGINE_GRACE:.0f}s while "
                      "listing the containers; check it (`docker info`) and run this again")
        return 1, False
    failed = False
    for c in found:
        cid = c.id
        collect = state is not None and state.cid == cid and state.session.is_dir()
        events = EventLog(state.session / "out.log") if collect and state else None
        control.say = Reporter(events, console)
        try:
            if collect and state is not None:
                dep = Deployment(engine, name, state.contract(), state.session, control,
                                 stop_timeout=state.stop_timeout,
                                 source=Sources(recorded(state.log_source, build_files_dir(),
                                                         name), engine, state.log_dir))
            else:  # nothing to collect into: stop and remove only
                dep = Deployment(engine, name, NO_STREAMS, Path("."), control,
                                 stop_timeout=state.stop_timeout if state else 10)
            dep.adopt(cid)
            if c.state in ("running", "restarting"):  # restarting: its policy
                dep.say(f"stopping container {name} ({cid[:12]})...")
                await dep.stop()
            if collect and state is not None and not dep.teardown_failed:
                await dep.collect(saved=state.positions, output=True)
                dep.say("collected the log bytes the stopped follower had missed",
                        terminal=False)
            if await dep.remove():
                dep.say(f"removed container {name} ({cid[:12]})")
                forget_host_dir(build_files_dir(), name, dep.say)
            failed = failed or dep.teardown_failed
        finally:
            if events is not None:
                events.close()
    if state is not None and state.cid in {c.id for c in found} and not failed:
        statefile.state_path(name).unlink(missing_ok=True)
    return (1 if failed else 0), bool(found)
