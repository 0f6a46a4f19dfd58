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
from loon_supervisor.engine.swarm import ROLE_LABEL
from loon_supervisor.errors import LoonError
from loon_supervisor.lifecycle import state as statefile
from loon_supervisor.lifecycle.control import Control, announce_kill, announce_stop, signal_name
from loon_supervisor.lifecycle.run import Outcome, Owner, Run
from loon_supervisor.lifecycle.state import DeploymentLock, DeploymentState, lock_holder
from loon_supervisor.lifecycle.unrecorded import new_state
from loon_supervisor.sinks.reporter import Reporter
from loon_supervisor.sinks.session import Session

WAIT_POLL = 2.0  # how often a waiting follower looks for a container to follow


def on_follower_signal(control: Control, say: Reporter, name: str, signum: int) -> None:
    """SIGTERM/SIGINT: stop the deployment when ``loon down`` asked for it, else detach
    (see the module's docstring); a second signal during a stop kills the container."""
    if control.stop_signal is not None:
        announce_kill(say)
        control.request_kill()
        return
    if control.handing_over:
        return
    current = statefile.load(name)
    if current is not None and current.down_requested:
        announce_stop(say, signum)
        control.request_stop(signum)
        return
    say(f"received {signal_name(signum)} (not from `loon down`): detaching; "
        "the container runs on and the next follower continues from here")
    control.request_hand_over()


async def watch_follower_signals(control: Control, say: Reporter, name: str) -> None:
    """The background logger's signal task (:func:`on_follower_signal`)."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            on_follower_signal(control, say, name, signum)


async def follow_locked(engine: Engine, state: DeploymentState, session: Session,
                        control: Control) -> Outcome:
    """With the lock held: follow ``state.cid`` until ``down``, its failure or a detach;
    the run's teardown removes the container unless detached (the state is kept then)."""
    say = session.say
    run = Run.from_state(engine, state, session, control, owner=Owner.FOLLOWER)
    run.adopt(state.cid)

    def attached() -> None:
        statefile.save(replace(state, logger_pid=os.getpid(), attached=True,
                               foreground_pid=None, down_requested=False,
                               positions=run.dep.positions()))
        say(f"follower {os.getpid()} attached to every stream")

    await run.follow(on_attached=attached)
    run.report_failure()
    return await run.teardown()


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
    # a swarm deployment's task containers are not a container deployment's container
    running = [c for c in found if c.running and ROLE_LABEL not in c.labels]
    return running[0].id if running else None


async def _swarm_unfollowed(name: str) -> DeploymentState | None:
    """The recorded swarm deployment, when its services run and nobody follows them."""
    state = statefile.load(name)
    if state is None or not state.swarm or lock_holder(name) is not None:
        return None
    try:
        async with open_engine() as engine:
            if await engine.swarm.active() and await engine.swarm.ours(name):
                return state
    except LoonError:
        pass
    return None


@dataclass
class _Current:
    """What a signal acts on in ``follow_always``: the follow in progress, if any."""

    ended: anyio.Event
    control: Control | None = None
    say: Reporter | None = None


async def follow_always(name: str, console: Console) -> int:
    """``loon attach --wait``: follow the deployment whenever it runs and nobody else
    follows it; end on a signal that is not ``loon down``'s (exit 0). Between follows it
    speaks on the terminal only (each follow's session has its own out.log)."""
    say = Reporter(None, console)
    say(f"waiting to follow deployment '{name}' (pid {os.getpid()}): a running "
                  "container that no other process follows")
    current = _Current(anyio.Event())
    async with anyio.create_task_group() as tg:
        tg.start_soon(_dispatch_signals, current, name)
        while not current.ended.is_set():
            swarm = await _swarm_unfollowed(name)
            cid = None if swarm is not None else await _running_unfollowed(name)
            if cid is None and swarm is None:
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
                if swarm is not None:
                    await _follow_swarm_once(swarm, say, current)
                elif cid is not None:
                    await _follow_one(name, cid, say, current)
            finally:
                current.control = current.say = None
                lock.release()
        tg.cancel_scope.cancel()
    say(f"stopped following deployment '{name}'")
    return 0


async def _dispatch_signals(current: _Current, name: str) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            if current.control is None or current.say is None:
                current.ended.set()
                continue
            on_follower_signal(current.control, current.say, name, signum)
            if current.control.handing_over:
                current.ended.set()


async def _follow_swarm_once(state: DeploymentState, say: Reporter, current: _Current
                             ) -> None:
    """Follow a swarm deployment's tasks once (lock held), each file continued at its size
    in the recorded session, until ``loon down`` removes the services or a signal detaches."""
    from loon_supervisor.swarm.up import follow_swarm

    name = state.name
    try:
        with Session(state.session, say.console) as session:
            control = Control()
            current.say = session.say
            current.control = control

            def attached() -> None:
                statefile.update(name, state.cid, logger_pid=os.getpid(), attached=True,
                                 foreground_pid=None, down_requested=False)
                session.say(f"following swarm deployment {name} as pid {os.getpid()} "
                            "(`loon attach --wait`)")

            async with open_engine() as engine:
                outcome = await follow_swarm(engine, state, session, control, attached)
            if outcome.removed:
                statefile.forget(name, state.cid)
    except LoonError as exc:
        say(f"following deployment {name} stopped: {exc}; waiting again")


async def _follow_one(name: str, cid: str, say: Reporter, current: _Current
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
                state = await new_state(engine, name, cid, say)
                say(f"no state for container {cid[:12]}: a new session, {state.session}")
            if current.ended.is_set():  # a signal came while the lock was being taken
                return None
            with Session(state.session, say.console) as session:
                control = Control()
                current.say = session.say
                current.control = control  # from here a signal acts on this follow
                session.say(f"following deployment {name} ({cid[:12]}) as pid "
                            f"{os.getpid()} (`loon attach --wait`)")
                return await follow_locked(engine, state, session, control)
    except LoonError as exc:
        say(f"following deployment {name} stopped: {exc}; waiting again")
        return None
