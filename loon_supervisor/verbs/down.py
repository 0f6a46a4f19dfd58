"""``-D``: stop this deployment's follower (background logger or foreground ``up``) and its
container, with or without a valid config (the deployment's name is read leniently).

Whoever holds the deployment's lock is asked to stop, so it collects the last bytes itself.
When nobody holds it (the logger died), ``down`` takes the lock and collects the bytes the
dead logger missed into its session before removing the container. Every engine call is
bounded: a hung engine gives one sentence and exit 1.
"""

from __future__ import annotations

from pathlib import Path

import aiodocker
import anyio
from rich.console import Console

from loon_supervisor.engine import containers, exec_streams, images
from loon_supervisor.engine.client import open_engine
from loon_supervisor.lifecycle.control import Reporter, Run
from loon_supervisor.lifecycle.detach import stop_logger
from loon_supervisor.lifecycle.identity import resolve
from loon_supervisor.lifecycle.state import DeploymentLock, lock_holder, read_state, state_path
from loon_supervisor.sinks.session import EventLog
from loon_supervisor.streams.follow import (
    ENGINE_GRACE,
    Streaming,
    append_stream,
    bounded,
    collect_tails,
    make_copies,
)


async def down(config_file: Path | None, name: str | None = None) -> int:
    """Stop and remove this deployment (and its follower). Works without config."""
    console = Console(soft_wrap=True)
    name = resolve(config_file, name).name
    stopped_logger = await stop_logger(name, console)
    lock = DeploymentLock.acquire(name, wait=2.0)
    if lock is None:
        console.print(f"deployment '{name}' is still followed by pid {lock_holder(name)}; "
                      "stop that process, then run this again")
        return 1
    try:
        with anyio.move_on_after(ENGINE_GRACE) as scope:
            async with open_engine() as docker:
                scope.deadline = anyio.current_time() + 3600  # the steps bound themselves
                swarm_found = await remove_swarm_services(docker, name, console)
                code, found = await remove_deployment(docker, name, console)
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


async def remove_swarm_services(docker: aiodocker.Docker, name: str, console: Console
                                ) -> bool:
    """Swarm mode: remove the deployment's services first (else Swarm would restart the
    task containers removed next); whether there were any."""
    from loon_supervisor.swarm import services as sv

    if not await sv.swarm_active(docker):
        return False
    found = await sv.ours(docker, name)
    for service in found:
        svc = service["Spec"]["Name"]
        await sv.remove_one(docker, svc)
        console.print(f"removed swarm service {svc}")
    return bool(found)


async def remove_deployment(docker: aiodocker.Docker, name: str, console: Console
                            ) -> tuple[int, bool]:
    """With the lock held: stop, collect what a dead follower missed, remove. (exit code,
    whether a container was found)."""
    state = read_state(name) or {}
    run = Run(say=Reporter(None, console))
    with bounded(run, "listing the containers", ENGINE_GRACE):
        found = await containers.list_ours(docker, name)
    for c in found:
        cid = c["Id"]
        collect = state.get("cid") == cid and Path(state.get("session", "/nonexistent")).is_dir()
        events = EventLog(Path(state["session"]) / "out.log") if collect else None
        run.say = Reporter(events, console)
        try:
            timeout = int(state.get("stop_timeout", 10))
            if c.get("State") == "running":
                run.say(f"stopping container {name} ({cid[:12]})...")
                with bounded(run, "stopping the container", timeout + ENGINE_GRACE):
                    await containers.stop(docker, cid)
            if collect:
                await _collect_missed(docker, run, cid, state)
            with bounded(run, "removing the container", ENGINE_GRACE):
                await containers.remove(docker, cid)
            if not run.teardown_failed:
                run.say(f"removed container {name} ({cid[:12]})")
        finally:
            if events is not None:
                events.close()
    if state.get("cid") in {c["Id"] for c in found} and not run.teardown_failed:
        state_path(name).unlink(missing_ok=True)
    return (1 if run.teardown_failed else 0), bool(found)


async def _collect_missed(docker: aiodocker.Docker, run: Run, cid: str, state: dict) -> None:
    contract = images.ImageContract(state["image"], tuple(state["services"]),
                                    state["log_dir"], state.get("status_command"))
    s = Streaming(docker, cid, contract, Path(state["session"]), int(state["stop_timeout"]),
                  None, mark=state["name"], saved_cursors=state.get("positions") or {})
    make_copies(s, run)
    with bounded(run, "collecting the final log bytes", ENGINE_GRACE):
        await collect_tails(s, run)
        copy = s.copies["container"]
        await append_stream(copy, exec_streams.container_output(docker, cid, copy.received))
    run.say("collected the log bytes the stopped follower had missed", terminal=False)

