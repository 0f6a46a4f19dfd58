"""A deployment's whole life in the process that holds its lock: the :class:`Run`.

A Run owns the deployment's lock, its state record, its session and its container (through
a :class:`~loon_supervisor.lifecycle.deployment.Deployment`, the container's and followers'
state machine). It is built fresh (``up``) or from a saved state (the background logger,
``attach --wait``, ``down`` for a dead follower, ``up --replace``, recreate), and every
way a run ends goes through :meth:`Run.teardown`::

    stop -> drain -> collect -> remove -> forget          (one budget: Deployment.bounded)
      |                                      |
      +- hand-over (SIGHUP, -d, a detaching  +- an engine that gave up: nothing is forgotten,
         signal): the container runs on,        so `loon down` can finish the job later
         the state keeps the positions

The verbs turn the returned :class:`Outcome` into exit codes; they hold no teardown steps.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum

import anyio

from loon_supervisor.engine.base import ContainerEngine
from loon_supervisor.engine.containers import ContainerSpec
from loon_supervisor.engine.images import ImageContract
from loon_supervisor.errors import signal_exit_code
from loon_supervisor.lifecycle import state as statefile
from loon_supervisor.lifecycle.control import Control
from loon_supervisor.lifecycle.crashloop import CrashLoopPolicy
from loon_supervisor.lifecycle.deployment import ENGINE_GRACE, NO_STREAMS, Deployment, Phase
from loon_supervisor.lifecycle.logger_process import reclaim, start_logger
from loon_supervisor.lifecycle.state import DeploymentLock, DeploymentState
from loon_supervisor.paths import build_files_dir
from loon_supervisor.sinks import retention
from loon_supervisor.sinks.reporter import Reporter
from loon_supervisor.sinks.session import Session
from loon_supervisor.sinks.terminal import Printer
from loon_supervisor.streams.cursor import Position
from loon_supervisor.streams.sources.base import LogSource
from loon_supervisor.streams.sources.choice import Sources, forget_host_dir, host_dir_of, recorded


class Owner(Enum):
    """Which process runs the deployment: decides the sentences of its end, and whether a
    hang-up passes the run to a background logger."""

    FOREGROUND = "foreground"  # `up` in a terminal
    LOGGER = "background logger"  # `loon _logger` (after -d, attach, a hang-up)
    FOLLOWER = "follower"  # `loon attach --wait`
    REMOVAL = "removal"  # `down`, `--replace`, recreate: the follower is gone


@dataclass(frozen=True)
class Outcome:
    """How a run ended, for the verbs' exit codes."""

    failure: str | None = None  # why the run failed, said once
    teardown_failed: bool = False  # an engine call gave up: the state is kept for `down`
    removed: bool = False  # the engine confirmed the container's removal
    handed_over: bool = False  # another follower has it; the container runs on
    down_requested: bool = False  # `loon down` asked for this stop

    def exit_code(self, stop_signal: int | None) -> int:
        if self.handed_over:
            return 0
        if self.failure is not None or self.teardown_failed:
            return 1
        if stop_signal is not None:
            if self.down_requested and stop_signal == signal.SIGTERM:
                return 0  # `loon down` asked: a normal stop
            return signal_exit_code(stop_signal)
        return 0


class Run:
    """One deployment's run in this process (see the module docstring)."""

    def __init__(self, engine: ContainerEngine, name: str, contract: ImageContract,
                 session: Session, control: Control, *, owner: Owner,
                 lock: DeploymentLock | None = None, stop_timeout: int = 10,
                 crash_policy: CrashLoopPolicy | None = None,
                 source: Callable[[str], LogSource] | None = None,
                 saved: DeploymentState | None = None,
                 prune: Callable[[dict[str, Position]], None] | None = None) -> None:
        self.owner = owner
        self.lock = lock
        self.session = session
        self.control = control
        self.saved = saved  # the state this run was built from (its positions included)
        self.dep = Deployment(engine, name, contract, session, control,
                              stop_timeout=stop_timeout, crash_policy=crash_policy,
                              source=source)
        self._prune = prune  # staged host files the positions have passed

    @classmethod
    def from_state(cls, engine: ContainerEngine, state: DeploymentState, session: Session,
                   control: Control, *, owner: Owner, lock: DeploymentLock | None = None
                   ) -> Run:
        """The one way a saved state becomes a run (logger, follower, removal)."""
        run = cls(engine, state.name, state.contract(), session, control, owner=owner,
                  lock=lock, stop_timeout=state.stop_timeout,
                  crash_policy=CrashLoopPolicy(*state.crash_loop) if state.crash_loop
                  else None,
                  source=Sources(recorded(state.log_source, build_files_dir(), state.name),
                                 engine, state.log_dir),
                  saved=state,
                  prune=retention.StagingPruner(
                      host_dir_of(state.log_source, build_files_dir(), state.name),
                      retention.recorded_limits(state.log_max_bytes)))
        return run

    @classmethod
    def unrecorded(cls, engine: ContainerEngine, name: str, say: Reporter,
                   stop_timeout: int = 10) -> Run:
        """A container with no session to collect into (no or another state): stop and
        remove only, said on the terminal."""
        return cls(engine, name, NO_STREAMS, Session.terminal_only(say.console), Control(),
                   owner=Owner.REMOVAL, stop_timeout=stop_timeout)

    @property
    def name(self) -> str:
        return self.dep.name

    @property
    def cid(self) -> str | None:
        return self.dep.cid

    # -- the container -----------------------------------------------------------------

    async def start(self, spec: ContainerSpec) -> str:
        return await self.dep.start(spec)

    def adopt(self, cid: str, *, running: bool = True) -> None:
        self.dep.adopt(cid, running=running)

    async def follow(self, *, printer: Printer | None = None, terminal: Printer | None = None,
                     on_attached: Callable[[], None] | None = None) -> None:
        """Follow until a stop, the container's end, a failed service or a hang-up (then
        stopped, drained and collected, or handed over); the positions are saved as they
        move. Continues from the saved positions of a run built from a state."""
        await self.dep.follow(printer=printer, terminal=terminal,
                              saved=self.saved.positions if self.saved else None,
                              on_attached=on_attached, on_positions=self.save_positions)

    # -- the state store ---------------------------------------------------------------

    def record(self, state: DeploymentState) -> None:
        """Write this run's state (what the next follower and ``down`` read)."""
        statefile.save(state)
        self.saved = state

    def save_positions(self, positions: dict[str, Position]) -> None:
        """Every second while following (a worker thread): where each stream is, and the
        staged host files the positions have passed may go."""
        assert self.cid is not None
        statefile.update(self.name, self.cid, positions=positions)
        if self._prune is not None:
            self._prune(positions)

    def release(self) -> None:
        """Give up the lock (unless a background logger took it over)."""
        if self.lock is not None:
            self.lock.release()

    # -- the end -----------------------------------------------------------------------

    async def teardown(self, *, collect_output: bool = False) -> Outcome:
        """stop -> drain -> collect -> remove -> forget, each step only if still to do, all
        under the deployment's one teardown budget and shielded from cancellation. A
        follow that ended in a hang-up is handed over instead (the foreground to a new
        background logger; a logger or follower just detaches)."""
        dep = self.dep
        with anyio.CancelScope(shield=True):
            if dep.phase is Phase.HANDED_OVER:
                if await self._hand_over_after_follow():
                    return Outcome(failure=dep.failure, handed_over=True)
            # FOLLOWING: the follow itself raised (an engine error): stop what it left.
            if dep.phase in (Phase.RUNNING, Phase.FOLLOWING, Phase.HANDED_OVER):
                if self.owner is Owner.REMOVAL:
                    dep.say(f"stopping container {self.name} ({(self.cid or '')[:12]})...")
                await dep.stop()
            if dep.phase is Phase.STOPPED and not dep.teardown_failed and (
                    dep.contract is not NO_STREAMS):
                await dep.collect(saved=self.saved.positions if self.saved else None,
                                  output=collect_output)
                if self.owner is Owner.REMOVAL:
                    dep.say("collected the log bytes the stopped follower had missed",
                            terminal=False)
            removed = False
            if not dep.teardown_failed:
                removed = await dep.remove()
                if removed:
                    self._say_removed()
                    forget_host_dir(build_files_dir(), self.name, dep.say)
            down = False
            if not dep.teardown_failed and self.cid is not None:
                current = statefile.load(self.name)
                down = bool(current and current.cid == self.cid and current.down_requested)
                statefile.forget(self.name, self.cid,
                                 pid=os.getpid() if self.owner is Owner.FOREGROUND else None)
        return Outcome(failure=dep.failure, teardown_failed=dep.teardown_failed,
                       removed=removed, down_requested=down)

    def _say_removed(self) -> None:
        dep, control = self.dep, self.control
        if self.owner is Owner.FOREGROUND:
            dep.say(f"removed container {self.name}",
                    terminal=control.stop_signal is not None or dep.failure is not None)
        elif self.owner is Owner.REMOVAL:
            dep.say(f"removed container {self.name} ({(self.cid or '')[:12]})")
        else:
            reason = dep.failure or ("stopped on request" if control.stop_signal
                                     else "stream ended")
            dep.say(f"{self.owner.value} exiting: {reason}; container removed")

    async def _hand_over_after_follow(self) -> bool:
        """The follow ended in a hang-up (or a detaching signal). A logger or follower
        just detaches; the foreground starts a background logger from the exact positions.
        False: it could not, and the run stops the container as usual."""
        dep = self.dep
        if self.owner is not Owner.FOREGROUND:
            extra = (" (`loon attach` or `loon service` continues from here)"
                     if self.owner is Owner.LOGGER else "")
            dep.say(f"{self.owner.value} {os.getpid()} detached; the container runs on{extra}")
            return True
        assert self.saved is not None and self.lock is not None
        proc, ok = await start_logger(replace(self.saved, positions=dep.positions()),
                                      self.lock)
        if ok:
            dep.say(f"terminal hung up: background logger pid {proc.pid} keeps writing "
                    f"{self.session.path}; stop everything with `loon down`")
            return True
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        dep.say("terminal hung up and the background logger did not start; stopping the "
                "container")
        self.control.handing_over = False
        return False

    def report_failure(self) -> None:
        """The failure said loudly, with the culprit's last lines."""
        self.dep.report_failure()

    async def detach(self, state: DeploymentState) -> int:
        """``up -d``: the running container goes to a background logger. If the logger
        does not attach, whatever it left undone is done here as ``down`` does it for a dead
        logger (stop, collect every byte from the saved positions, remove)."""
        assert self.lock is not None
        control, dep = self.control, self.dep
        proc, ok = await start_logger(state, self.lock, control.stop_requested)
        if ok:
            from loon_supervisor.verbs.up import up_line

            dep.say(up_line(state))
            dep.say(f"logs are in {state.session} (a background logger, pid {proc.pid}, keeps "
                    "writing them)")
            dep.say("stop everything with: python3 build.py -D   (or: loon down)")
            return 0
        if control.stop_signal is None:
            dep.say(f"the background logger did not attach; see "
                    f"{self.session.logger_stderr}; stopping the container")
        elif proc.poll() is None:
            # Ctrl+C during the hand-over: the logger owns the deployment now and stops it
            # gracefully itself, collecting every byte.
            proc.terminate()
            with anyio.move_on_after(state.stop_timeout + ENGINE_GRACE):
                while proc.poll() is None:
                    await anyio.sleep(0.1)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reclaim(self.lock)
        # The logger may have died before it could stop anything (a TERM that lands before
        # its signal handlers exist ends it at once), or finished: a run from what it saved.
        with anyio.CancelScope(shield=True):
            await remove_deployment(dep.engine, self.name, dep.say)
        statefile.forget(state.name, state.cid)
        if control.stop_signal is not None:
            return signal_exit_code(control.stop_signal)
        return 1


async def remove_deployment(engine: ContainerEngine, name: str, say: Reporter
                            ) -> tuple[int, bool]:
    """With the lock held and no follower left: each container of the deployment becomes a
    run (from the saved state when it names the container and its session exists, else one
    that only stops and removes) and is torn down. (exit code, whether one was found)."""
    state = statefile.load(name)
    if state is None and statefile.unreadable(name):
        say(f"the state file {statefile.state_path(name)} cannot be read; the "
                      "container is stopped and removed without collecting the log bytes "
                      "its follower had not read (they stay in no session file)")
    with anyio.CancelScope(shield=True) as scope:
        scope.deadline = anyio.current_time() + ENGINE_GRACE
        found = await engine.list_ours(name)
    if scope.cancelled_caught:
        say(f"the Docker engine did not answer within {ENGINE_GRACE:.0f}s while "
                      "listing the containers; check it (`docker info`) and run this again")
        return 1, False
    failed = False
    for c in found:
        cid = c.id
        recorded_here = state is not None and state.cid == cid and state.session.is_dir()
        with contextlib.ExitStack() as stack:
            if recorded_here and state is not None:
                session = stack.enter_context(Session(state.session, say.console))
                run = Run.from_state(engine, state, session, Control(), owner=Owner.REMOVAL)
            else:
                run = Run.unrecorded(engine, name, say,
                                     state.stop_timeout if state else 10)
            run.adopt(cid, running=c.state in ("running", "restarting"))
            outcome = await run.teardown(collect_output=True)
            failed = failed or outcome.teardown_failed
    return (1 if failed else 0), bool(found)
