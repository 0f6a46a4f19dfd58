"""The followers that own no terminal (the background logger, and ``loon attach --wait``
which ``loon service install`` runs at boot), and what a signal means to them.

A SIGTERM reaches such a follower from ``loon down`` (which first sets ``down_requested`` in
the state file) or from anything else: a machine shutting down, ``systemctl stop``, a
``kill``. Only ``loon down`` stops the deployment; any other signal detaches: the streams
close at their exact positions (saved in the state file), the container runs on, and the
next follower continues the same session files from there. So a reboot never removes Loon.

``loon attach --wait`` (:func:`follow_always`) waits for the engine and a running container
of the deployment that nobody follows, takes the deployment's lock (so ``loon down`` and
``loon status`` see it like any follower), follows it, and waits again when the container is
gone; it ends (exit 0) on a signal that is not ``loon down``'s.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, replace

import anyio
from rich.console import Console

from loon_supervisor.engine.base import Engine
from loon_supervisor.engine.client import answers_anew, open_engine
from loon_supervisor.engine.containers import URL_LABEL
from loon_supervisor.engine.records import ContainerInfo
from loon_supervisor.errors import LoonError
from loon_supervisor.lifecycle import state as statefile
from loon_supervisor.lifecycle.control import Control
from loon_supervisor.lifecycle.crashloop import CrashLoopPolicy
from loon_supervisor.lifecycle.deployment import Deployment, Phase
from loon_supervisor.lifecycle.state import DeploymentLock, DeploymentState, lock_holder
from loon_supervisor.paths import build_files_dir, logs_dir
from loon_supervisor.sinks import retention
from loon_supervisor.sinks.reporter import Reporter
from loon_supervisor.sinks.session import EventLog, new_session_dir
from loon_supervisor.streams.cursor import Position
from loon_supervisor.streams.sources.choice import (
    Sources,
    forget_host_dir,
    from_container,
    host_dir_of,
    recorded,
)

WAIT_POLL = 2.0  # how often a waiting follower looks for a container to follow


def on_follower_signal(control: Control, name: str, signum: int) -> None:
    """SIGTERM/SIGINT: stop the deployment when ``loon down`` asked for it, else detach
    (see the module's docstring); a second signal during a stop kills the container."""
    if control.stop_signal is not None:
        control.request_kill()
        return
    if control.handing_over:
        return
    current = statefile.load(name)
    if current is not None and current.down_requested:
        control.request_stop(signum)
        return
    control.handing_over = True
    control.say(f"received {signal.Signals(signum).name} (not from `loon down`): detaching; "
                "the container runs on and the next follower continues from here")
    control.stop_requested.set()


async def watch_follower_signals(control: Control, name: str) -> None:
    """The background logger's signal task (:func:`on_follower_signal`)."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            on_follower_signal(control, name, signum)


async def new_state(engine: Engine, name: str, cid: str) -> DeploymentState:
    """A state (and a new session) for a running container nobody recorded (``attach``)."""
    info = await engine.inspect(cid) or ContainerInfo()
    contract = await engine.read_contract(info.image)
    session = new_session_dir(logs_dir())
    await anyio.to_thread.run_sync(
        retention.run_pass, logs_dir(), build_files_dir(), retention.limits_for(), session,
        lambda line: print(line, flush=True), lambda _line: None)
    return DeploymentState(
        name=name, cid=cid, session=session, image=contract.image,
        services=contract.services, log_dir=contract.log_dir,
        status_command=contract.status_command,
        url=info.labels.get(URL_LABEL, ""),
        stop_timeout=info.stop_timeout or 10,
        log_source=from_container(info, contract.log_dir).kind)


@dataclass
class Outcome:
    """How one follow ended: ``detached`` leaves the container running for the next."""

    code: int
    detached: bool


async def follow_locked(engine: Engine, name: str, state: DeploymentState,
                        control: Control) -> Outcome:
    """With the lock held: follow ``state.cid`` until ``down``, its failure or a detach;
    remove the container unless detached; the state is kept only for a detach."""
    say = control.say
    cid = state.cid
    policy = CrashLoopPolicy(*state.crash_loop) if state.crash_loop else None
    dep = Deployment(engine, name, state.contract(), state.session, control,
                     stop_timeout=state.stop_timeout, crash_policy=policy,
                     source=Sources(recorded(state.log_source, build_files_dir(), name),
                                    engine, state.log_dir))
    dep.adopt(cid)
    prune = retention.StagingPruner(host_dir_of(state.log_source, build_files_dir(), name),
                                    retention.recorded_limits(state.log_max_bytes))

    def save(positions: dict[str, Position]) -> None:
        statefile.update(name, cid, positions=positions)
        prune(positions)

    def attached() -> None:
        statefile.save(replace(state, logger_pid=os.getpid(), attached=True,
                               foreground_pid=None, down_requested=False,
                               positions=dep.positions()))
        say(f"follower {os.getpid()} attached to every stream")

    await dep.follow(saved=state.positions, on_attached=attached, on_positions=save)
    dep.report_failure()
    if dep.phase is Phase.HANDED_OVER:
        say(f"follower {os.getpid()} detached; the container runs on")
        return Outcome(0, True)
    if await dep.remove():
        reason = dep.failure or ("stopped on request" if control.stop_signal
                                 else "stream ended")
        say(f"follower exiting: {reason}; container removed")
        forget_host_dir(build_files_dir(), name, say)
    statefile.forget(name, cid)  # never a newer deployment's
    return Outcome(1 if dep.teardown_failed else 0, False)


async def _running_unfollowed(name: str) -> str | None:
    """A running container of the deployment that nobody follows, if the engine (on a new
    connection) shows one."""
    if lock_holder(name) is not None or not await answers_anew():
        return None
    try:
        async with open_engine() as engine:
            found = await engine.list_ours(name)
    except LoonError:
        return None
    running = [c for c in found if c.running]
    return running[0].id if running else None


@dataclass
class _Current:
    """What a signal acts on in ``follow_always``: the follow in progress, if any."""

    ended: anyio.Event
    control: Control | None = None


async def follow_always(name: str, console: Console) -> int:
    """``loon attach --wait``: follow the deployment whenever it runs and nobody else
    follows it; end on a signal that is not ``loon down``'s (exit 0)."""
    console.print(f"waiting to follow deployment '{name}' (pid {os.getpid()}): a running "
                  "container that no other process follows")
    current = _Current(anyio.Event())
    async with anyio.create_task_group() as tg:
        tg.start_soon(_dispatch_signals, current, name)
        while not current.ended.is_set():
            cid = await _running_unfollowed(name)
            if cid is None:
                with anyio.move_on_after(WAIT_POLL):
                    await current.ended.wait()
                continue
            lock = DeploymentLock.acquire(name, wait=0)
            if lock is None:
                continue
            if current.ended.is_set():
                lock.release()
                break
            try:
                await _follow_one(name, cid, console, current)
            finally:
                current.control = None
                lock.release()
        tg.cancel_scope.cancel()
    console.print(f"stopped following deployment '{name}'")
    return 0


async def _dispatch_signals(current: _Current, name: str) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            if current.control is None:
                current.ended.set()
                continue
            on_follower_signal(current.control, name, signum)
            if current.control.handing_over:
                current.ended.set()


async def _follow_one(name: str, cid: str, console: Console, current: _Current
                      ) -> Outcome | None:
    """Follow container ``cid`` once (lock held), in the recorded session when the state
    names it, else in a new one."""
    try:
        async with open_engine() as engine:
            info = await engine.inspect(cid)
            if not info or not info.running:
                return None
            state = statefile.load(name)
            if state is None or state.cid != cid:
                state = await new_state(engine, name, cid)
                console.print(f"no state for container {cid[:12]}: a new session, "
                              f"{state.session}")
            if current.ended.is_set():  # a signal came while the lock was being taken
                return None
            events = EventLog(state.session / "out.log")
            control = Control(say=Reporter(events, console))
            current.control = control  # from here a signal acts on this follow
            try:
                control.say(f"following deployment {name} ({cid[:12]}) as pid {os.getpid()} "
                            "(`loon attach --wait`)")
                return await follow_locked(engine, name, state, control)
            finally:
                events.close()
    except LoonError as exc:
        console.print(f"following deployment {name} stopped: {exc}; waiting again")
        return None
