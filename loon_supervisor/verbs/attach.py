"""``loon attach``: follow a running deployment again (after its logger died), continuing
each session file at the byte where it stopped. ``--wait`` follows in the foreground, for a
service manager (:func:`~loon_supervisor.lifecycle.supervised.follow_always`)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from rich.console import Console

from loon_supervisor.engine.client import open_engine
from loon_supervisor.lifecycle import state as statefile
from loon_supervisor.lifecycle.logger_process import start_logger
from loon_supervisor.lifecycle.running import find_running
from loon_supervisor.lifecycle.state import DeploymentLock, DeploymentState, lock_holder
from loon_supervisor.lifecycle.unrecorded import new_state
from loon_supervisor.sinks.reporter import Reporter
from loon_supervisor.sinks.session import LOGGER_STDERR


async def attach(name: str, console: Console) -> int:
    lock = DeploymentLock.acquire(name)
    if lock is None:
        console.print(f"deployment '{name}' is already followed (pid {lock_holder(name)})")
        return 0
    try:
        state = statefile.load(name)
        if state is not None and state.swarm:
            return await _attach_swarm(state, lock, console)
        async with open_engine() as engine:
            found = await find_running(engine, name)
            if found is None:
                console.print(f"no running container of deployment '{name}': start it with "
                              "`python3 build.py` (or `loon up`)")
                return 1
            cid = found.id
            if state is None or state.cid != cid:
                console.print("no logger state for this container: starting a new session")
                state = await new_state(engine, name, cid, Reporter(None, console))
        return await _start(state, lock, console,
                            [state.session / f"{s}.log" for s in state.services])
    finally:
        lock.release()


async def _attach_swarm(state: DeploymentState, lock: DeploymentLock, console: Console
                        ) -> int:
    """A swarm deployment: a new logger continues every task's file at its size."""
    async with open_engine() as engine:
        running = await engine.swarm.active() and bool(await engine.swarm.ours(state.name))
    if not running:
        console.print(f"no swarm services of deployment '{state.name}' run: start them with "
                      "`python3 build.py` (or `loon up`)")
        return 1
    return await _start(state, lock, console,
                        [p for p in sorted(state.session.glob("*.log"))
                         if p.name not in ("out.log", LOGGER_STDERR)])


async def _start(state: DeploymentState, lock: DeploymentLock, console: Console,
                 files: list[Path]) -> int:
    """A new logger for ``state``; says where each of ``files`` continues."""
    proc, ok = await start_logger(replace(state, foreground_pid=None), lock)
    if not ok:
        console.print(f"the logger did not attach; see {state.session / LOGGER_STDERR}")
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        return 1
    sizes = ", ".join(f"{p.stem} at byte {p.stat().st_size}" for p in files if p.exists())
    console.print(f"re-attached (logger pid {proc.pid}) into {state.session}: {sizes}")
    return 0


@dataclass(frozen=True)
class AttachOptions:
    """``loon attach``: the deployment; ``wait`` follows in the foreground for a service manager."""

    name: str
    wait: bool = False


async def run(opts: AttachOptions) -> int:
    if opts.wait:
        from loon_supervisor.lifecycle.supervised import follow_always

        return await follow_always(opts.name, Console(soft_wrap=True))
    return await attach(opts.name, Console(soft_wrap=True))
