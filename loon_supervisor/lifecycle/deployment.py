"""The one owner of a deployment's container and followers while a process holds its lock.

A :class:`Deployment` alone creates, follows, stops, drains, collects and removes the
container; the foreground ``up``, the background logger, ``attach`` (through the logger),
``down`` and the deploy server (through ``up``/``down``) all go through it. Signals reach
it only through its :class:`~loon_supervisor.lifecycle.control.Control`.

::

      start(spec) / adopt(cid)
    NEW ──────────────────────▶ RUNNING ──follow()──▶ FOLLOWING
                                   │                     │  stop asked, container exited,
                                   │ stop()              │  or a service FATAL/EXITED
                                   ▼                     ▼
                                STOPPED ◀────────── (stop, drain the followers)
                                   │ collect()           │ hang-up: streams closed at their
                                   ▼                     ▼ exact positions, container runs on
                               COLLECTED            HANDED_OVER
                                   │ remove()
                                   ▼
                                REMOVED

A container that stops because it is restarted on purpose (``loon restart``, see
:mod:`~loon_supervisor.lifecycle.restart_marker`), with the Docker engine (its restart
policy starts it again) or by hand outside loon (``docker restart``: it runs again within
``HAND_RESTART_GRACE`` with a new start time and no restart counted by the policy) is
waited for: the followers re-attach from their positions and the run goes on. Any other stop
is "the container exited on its own", a failure (a crash that the restart policy restarts
included: the policy counts it in ``RestartCount``, a manual start resets that count).

Every teardown step is bounded (:meth:`Deployment.bounded`): an engine that stops answering
gives one sentence, ``teardown_failed`` and exit 1 instead of a hang.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from enum import StrEnum

import anyio

from loon_supervisor.engine.base import ContainerEngine
from loon_supervisor.engine.containers import TOOL_LABEL, ContainerSpec
from loon_supervisor.engine.images import ImageContract, parse_status
from loon_supervisor.errors import EngineError
from loon_supervisor.lifecycle import restart_marker
from loon_supervisor.lifecycle.control import Control
from loon_supervisor.lifecycle.crashloop import CrashLoopPolicy, CrashLoopWatch
from loon_supervisor.sinks.reporter import Reporter
from loon_supervisor.sinks.session import Session
from loon_supervisor.sinks.terminal import Printer
from loon_supervisor.streams.cursor import Position
from loon_supervisor.streams.follow import Followers, last_lines
from loon_supervisor.streams.sources.base import LogSource
from loon_supervisor.streams.sources.exec import ExecSource

STATUS_INTERVAL = 2.0
FAILED_STATES = ("FATAL", "EXITED")
DRAIN_GRACE = 10.0
# How long a teardown step waits for the engine (on top of the stop timeout for the stop).
ENGINE_GRACE = float(os.environ.get("LOON_ENGINE_GRACE", "30"))
# How long a container may take to run again after a restart we expect (on top of its stop
# timeout), and how long an engine that went away may take to come back.
RESTART_GRACE = 60.0
ENGINE_BACK_LIMIT = 600.0
# A stop nobody announced: how long to watch for the container to be started again by hand
# (`docker restart` starts it right after the stop) before it counts as an exit.
HAND_RESTART_GRACE = 10.0  # a start under load takes seconds; a `docker stop` waits it out
# For a container whose streams are not followed or collected (stop and remove only).
NO_STREAMS = ImageContract("", (), "/", None)


class Phase(StrEnum):
    NEW = "new"
    RUNNING = "running"
    FOLLOWING = "following"
    HANDED_OVER = "handed-over"
    STOPPED = "stopped"
    COLLECTED = "collected"
    REMOVED = "removed"


class Deployment:
    """One deployment's container, its followers and the outcome of its run."""

    def __init__(self, engine: ContainerEngine, name: str, contract: ImageContract,
                 session: Session, control: Control, *, stop_timeout: int = 10,
                 crash_policy: CrashLoopPolicy | None = None,
                 source: Callable[[str], LogSource] | None = None) -> None:
        self.engine = engine
        self.name = name
        self.contract = contract
        self.session = session
        self.control = control
        self.stop_timeout = stop_timeout
        self.crash_policy = crash_policy or CrashLoopPolicy()
        self._source = source or (lambda cid: ExecSource(engine, cid))
        self.phase = Phase.NEW
        self.cid: str | None = None
        self.followers: Followers | None = None
        self.failure: str | None = None  # why the run failed (exit 1), said once
        self.teardown_failed = False  # an engine call in teardown gave up
        self.engine_lost = False
        self.restarts = 0  # restarts seen through (planned or with the engine)
        self._coming_back: anyio.Event | None = None
        self._back_reason: str | None = None
        self._stopped_by_engine = False
        self._run: tuple[object, int] | None = None  # the run followed: (StartedAt, RestartCount)
        self._budget: float | None = None  # the teardown's deadline, from its first step

    @property
    def say(self) -> Reporter:
        return self.session.say

    # -- the transitions ---------------------------------------------------------------

    async def start(self, spec: ContainerSpec) -> str:
        """NEW -> RUNNING: create and start the container."""
        self._expect(Phase.NEW)
        self.cid = await self.engine.create_and_start(spec)
        self.phase = Phase.RUNNING
        return self.cid

    def adopt(self, cid: str, *, running: bool = True) -> None:
        """NEW -> RUNNING (or STOPPED: a container that is not running, for a removal):
        take over a container started earlier (logger, attach, down)."""
        self._expect(Phase.NEW)
        self.cid = cid
        self.phase = Phase.RUNNING if running else Phase.STOPPED

    async def follow(self, *, printer: Printer | None = None, terminal: Printer | None = None,
                     saved: dict[str, Position] | None = None,
                     on_attached: Callable[[], None] | None = None,
                     on_positions: Callable[[dict[str, Position]], None] | None = None
                     ) -> None:
        """RUNNING -> FOLLOWING -> STOPPED -> COLLECTED, or -> HANDED_OVER on a hang-up.

        Follows every stream until a stop request, the container's exit, or a failed
        service; then stops the container, drains the followers and collects the rest."""
        self._expect(Phase.RUNNING)
        followers = self._followers(printer, saved)
        self.phase = Phase.FOLLOWING
        async with anyio.create_task_group() as outer:
            term = printer or terminal
            if term is not None:
                outer.start_soon(term.pump)
            if on_positions is not None:
                outer.start_soon(_save_positions, followers, on_positions)
            await self._follow_until_stop(followers, on_attached)
            if self.phase is Phase.STOPPED and not self.teardown_failed:
                await self.collect()
            if on_positions is not None:
                with contextlib.suppress(OSError):
                    on_positions(followers.positions())
            if term is not None:
                await term.drain()
            outer.cancel_scope.cancel()

    async def stop(self) -> None:
        """RUNNING/FOLLOWING/HANDED_OVER -> STOPPED: graceful stop within the stop timeout;
        a second signal kills."""
        self._expect(Phase.RUNNING, Phase.FOLLOWING, Phase.HANDED_OVER)
        assert self.cid is not None
        cid = self.cid
        with self.bounded("stopping the container", self.stop_timeout + ENGINE_GRACE):
            async with anyio.create_task_group() as tg:
                async def graceful() -> None:
                    await self.engine.stop(cid, self.stop_timeout)
                    tg.cancel_scope.cancel()

                async def forced() -> None:
                    await self.control.force.wait()
                    await self.engine.kill(cid)
                    tg.cancel_scope.cancel()

                tg.start_soon(graceful)
                tg.start_soon(forced)
        self.phase = Phase.STOPPED

    async def collect(self, *, saved: dict[str, Position] | None = None,
                      output: bool = False) -> None:
        """STOPPED -> COLLECTED: the bytes the followers had not read (with ``output``, the
        container output too: a dead follower's), streamed out of the stopped container."""
        self._expect(Phase.STOPPED)
        followers = self.followers
        if followers is None:  # nobody followed in this process: say what is read
            followers = self._followers(None, saved)
            self.say.log_only(f"log source: {followers.source.describe()} (collecting what "
                              "the stopped follower had not read)")
        with self.bounded("collecting the final log bytes", ENGINE_GRACE) as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(_extend_while_bytes_come, scope, followers, self._extend_budget)
                await followers.collect()
                if output:
                    await followers.collect_output()
                tg.cancel_scope.cancel()
        if not self.teardown_failed:
            self.phase = Phase.COLLECTED

    async def remove(self) -> bool:
        """STOPPED/COLLECTED -> REMOVED; whether the engine confirmed it."""
        self._expect(Phase.STOPPED, Phase.COLLECTED)
        assert self.cid is not None
        with self.bounded("removing the container", ENGINE_GRACE):
            await self.engine.remove(self.cid)
            self.phase = Phase.REMOVED
        return self.phase is Phase.REMOVED

    def positions(self) -> dict[str, Position]:
        return self.followers.positions() if self.followers is not None else {}

    @property
    def culprit(self) -> str:
        """Whose log explains the failure: the failed service, else the container."""
        failure = self.failure or ""
        return failure.split()[1] if failure.startswith("service ") else "container"

    def report_failure(self) -> None:
        """The failure said loudly, with the culprit's last lines."""
        if self.failure is None:
            return
        culprit = self.culprit
        self.say(f"FAILED: {self.failure}; last lines of {culprit}.log:")
        for line in last_lines(self.session.log_file(culprit)):
            self.say(f"  {line}")

    # -- inside ------------------------------------------------------------------------

    def _expect(self, *phases: Phase) -> None:
        if self.phase not in phases:
            raise RuntimeError(f"deployment {self.name} is {self.phase}, not "
                               + " or ".join(phases))

    def _followers(self, printer: Printer | None,
                   saved: dict[str, Position] | None) -> Followers:
        assert self.cid is not None
        cid = self.cid
        self.followers = Followers(
            source=self._source(cid), log_dir=self.contract.log_dir,
            services=self.contract.services, session=self.session.path, say=self.say,
            output=lambda skip: self.engine.container_output(cid, skip),
            still_running=self._running, mark=self.name, printer=printer,
            saved=saved or {}, generations=self.contract.log_backups)
        return self.followers

    def _extend_budget(self, until: float) -> None:
        """Progress (bytes still arriving) buys the rest of the teardown its time."""
        if self._budget is not None:
            self._budget = max(self._budget, until + 2 * ENGINE_GRACE)

    def fail(self, reason: str) -> None:
        """Record why the run failed (the first reason wins) and say it."""
        if self.failure is None:
            self.failure = reason
            self.say(reason)

    @contextlib.contextmanager
    def bounded(self, doing: str, seconds: float) -> Iterator[anyio.CancelScope]:
        """A shielded teardown step that gives up after ``seconds`` with one sentence, and
        no later than the teardown's one budget, which starts with its first step (the
        stop, or the first step a removal needs): enough for a stop, the followers' drain,
        the collection and the removal each to take their own bound (a collection that
        still receives bytes moves both on: :func:`_extend_while_bytes_come`)."""
        now = anyio.current_time()
        if self._budget is None:
            self._budget = now + self.stop_timeout + DRAIN_GRACE + 3 * ENGINE_GRACE
        with anyio.CancelScope(shield=True) as scope:
            scope.deadline = min(now + seconds, self._budget)
            yield scope
        if scope.cancelled_caught:
            msg = (f"the Docker engine did not answer within {seconds:.0f}s while {doing}; "
                   "the container may still run: check it with `docker ps` and stop it with "
                   "`loon down`")
            if self.failure is None:
                self.failure = msg
            self.teardown_failed = True
            self.say(msg)

    async def _follow_until_stop(self, followers: Followers,
                                 on_attached: Callable[[], None] | None) -> None:
        stopped_at = 0.0
        async with anyio.create_task_group() as streams:
            await followers.start(streams)
            if on_attached is not None:
                on_attached()
            async with anyio.create_task_group() as watch:
                watch.start_soon(self._wait_exit, watch.cancel_scope)
                watch.start_soon(self._watch_status, watch.cancel_scope)
                watch.start_soon(self._wait_stop_request, watch.cancel_scope)
            followers.stopping = True
            if self.control.handing_over:
                # The background logger takes over from the exact positions: stop reading.
                streams.cancel_scope.cancel()
                self.phase = Phase.HANDED_OVER
                return
            self.say("stopping the container", terminal=self.control.stop_signal is not None)
            await self.stop()
            # Followers end at their files' ends once the container is down; bound the wait.
            # An engine that did not answer the stop will not end them either.
            stopped_at = anyio.current_time()
            if not self.teardown_failed:
                followers.container_stopped()
            streams.cancel_scope.deadline = stopped_at + (
                0 if self.teardown_failed else DRAIN_GRACE)
        if self.phase is Phase.STOPPED and not self.teardown_failed:
            took = anyio.current_time() - stopped_at
            if streams.cancel_scope.cancelled_caught:
                self.say.log_only(f"the log followers had not ended {DRAIN_GRACE:.0f}s after "
                                  "the stop; the rest is collected from the stopped container")
            else:
                self.say.log_only(f"the log followers read their files to the end "
                                  f"{took:.2f}s after the stop")

    async def _wait_stop_request(self, watch: anyio.CancelScope) -> None:
        await self.control.stop_requested.wait()
        watch.cancel()

    async def _wait_exit(self, watch: anyio.CancelScope) -> None:
        assert self.cid is not None
        while True:
            seen = self.restarts
            await self._note_run()
            try:
                code = await self.engine.wait_exit(self.cid)
            except EngineError:
                if await self._running():
                    continue
                info = None
                with contextlib.suppress(EngineError):
                    info = await self.engine.inspect(self.cid)
                if info is None:
                    self.fail("the container is gone (the Docker engine lost it)")
                    watch.cancel()
                    return
                code = info.exit_code
            if self.control.stop_signal is not None:
                break
            # A restart someone else already saw through, or one we expect: follow on.
            if self.restarts > seen or await self._comes_back() is not None:
                continue
            break
        if self.control.stop_signal is None:
            if self._stopped_by_engine:
                self.fail(f"the container stopped with the Docker engine (code {code}) and "
                          "did not run again (a container created without a restart policy, "
                          "by an older loon: `loon up` recreates it)")
            else:
                self.fail(f"the container exited on its own with code {code}")
        watch.cancel()

    async def _comes_back(self) -> str | None:
        """The container is not running. If its stop was expected (``loon restart`` asked,
        or the engine itself is going away), wait until it runs again: why it restarted, or
        None (a real exit, or it did not come back). Concurrent callers (every follower and
        the exit watch) share one wait."""
        if self._coming_back is not None:
            await self._coming_back.wait()
            return self._back_reason
        self._coming_back = anyio.Event()
        self._back_reason = None
        try:
            self._back_reason = await self._wait_back()
        finally:
            self._coming_back.set()
            self._coming_back = None
        return self._back_reason

    async def _wait_back(self) -> str | None:
        assert self.cid is not None
        if self.control.stop_requested.is_set():
            return None
        req = restart_marker.pending(self.name, self.cid, self.stop_timeout)
        if req is not None:
            reason = f"restarted by {req.by}"
            self.say(f"the container is restarting ({req.by} asked for it); the followers "
                     "continue from their positions once it runs again")
        elif not await self.engine.answers_anew():
            # A dockerd shutting down stops its containers after closing its listener.
            reason = "restarted with the Docker engine"
            self._stopped_by_engine = True
            self.say("the container stopped because the Docker engine is going away; "
                     "waiting for the engine and for the container to run again")
            if not await self._engine_back():
                return None
        elif await self._started_by_hand():
            reason = "restarted outside loon"
            self.say("the container was restarted outside loon (`docker restart` or a "
                     "`docker stop` and `docker start`); the followers continue from their "
                     "positions")
        else:
            return None
        self.restarts += 1
        limit = self.stop_timeout + RESTART_GRACE
        with anyio.move_on_after(limit):
            while not self.control.stop_requested.is_set():
                try:
                    info = await self.engine.inspect(self.cid)
                except EngineError:  # the old engine's connections, or it is away again
                    if not await self._engine_back():
                        return None
                    continue
                if info is None:
                    return None
                if info.running:
                    restart_marker.clear(self.name, self.cid)
                    self.say(f"the container runs again ({reason}); following it on")
                    return reason
                await anyio.sleep(0.2)
        if req is not None:
            restart_marker.clear(self.name, self.cid)
        if not self.control.stop_requested.is_set():
            self.say(f"the container did not run again within {limit:.0f}s after it stopped")
        return None

    async def _note_run(self) -> None:
        """Remember the run being followed, to tell a start by hand from the restart
        policy's (:meth:`_started_by_hand`)."""
        assert self.cid is not None
        with contextlib.suppress(EngineError):
            info = await self.engine.inspect(self.cid)
            if info is not None and info.running:
                self._run = (info.started_at, info.restart_count)

    async def _started_by_hand(self) -> bool:
        """Did someone start the stopped container again (``docker restart``)? True when,
        within ``HAND_RESTART_GRACE``, it runs with another start time than the run followed
        and its restart policy counted no restart (a crash the policy restarts is still an
        exit; a start by hand resets ``RestartCount``)."""
        assert self.cid is not None
        if self._run is None or self._run[0] is None:
            return False
        started, count = self._run
        with anyio.move_on_after(HAND_RESTART_GRACE):
            while not self.control.stop_requested.is_set():
                try:
                    info = await self.engine.inspect(self.cid)
                except EngineError:
                    return False
                if info is None:
                    return False
                if info.restarting or info.restart_count > count:
                    return False  # the restart policy's, after an exit
                if info.running and info.started_at != started:
                    return True
                await anyio.sleep(0.2)
        return False

    async def _watch_status(self, watch: anyio.CancelScope) -> None:
        """Poll the image's status command: report changes, count restarts (crash loops),
        stop the run on FATAL/EXITED."""
        command = self.contract.status_command
        assert self.cid is not None
        if not command:
            await anyio.sleep_forever()
            return
        seen: dict[str, str] = {}
        loops = CrashLoopWatch(self.session.path, self.say, last_lines, self.crash_policy)
        run = self.restarts
        async with contextlib.aclosing(self.engine.status_outputs(  # one long-lived exec
                self.cid, command, STATUS_INTERVAL, f"{self.name}/status")) as outputs:
            async for out in outputs:
                if run != self.restarts:  # a whole-container restart: new pids, not crashes
                    run = self.restarts
                    loops = CrashLoopWatch(self.session.path, self.say, last_lines,
                                           self.crash_policy)
                for name, state, line in parse_status(out, self.contract.services):
                    loops.observe(name, line)
                    if seen.get(name) != state:
                        seen[name] = state
                        self.say(f"{name}: {state}")
                    if state in FAILED_STATES:
                        self.failure = self.failure or f"service {name} is {state}"
                        self.say(f"service {name} reached {state}")
                        watch.cancel()
                        return

    async def _running(self) -> bool:
        """Is the container still running? Waits out an engine that went away, and a
        restart that was expected (:meth:`_comes_back`)."""
        assert self.cid is not None
        while True:
            try:
                info = await self.engine.inspect(self.cid)
            except EngineError:
                if not await self._engine_back():
                    return False
                continue
            if info and info.running:
                return True
            if info is None or self.stopping_run():
                return False
            return await self._comes_back() is not None

    def stopping_run(self) -> bool:
        """This run is ending (a stop was asked, or the followers were told to stop)."""
        return self.control.stop_requested.is_set() or (
            self.followers is not None and self.followers.stopping)

    async def _engine_back(self, limit: float = ENGINE_BACK_LIMIT) -> bool:
        """Wait until the engine takes new connections again (a dying dockerd still answers
        on connections opened before it closed its listener)."""
        if await self.engine.answers_anew():
            return True
        if not self.engine_lost:
            self.engine_lost = True
            self.say("the Docker engine went away; waiting for it to come back")
        delay = 0.2
        with anyio.move_on_after(limit):
            while not await self.engine.answers_anew():
                await anyio.sleep(delay)
                delay = min(delay * 2, 2.0)
            self.engine_lost = False
            self.restarts += 1  # the containers may have restarted with it
            self.say("the Docker engine is back")
            return True
        return False


async def _extend_while_bytes_come(scope: anyio.CancelScope, followers: Followers,
                                   extend: Callable[[float], None], every: float = 0.5) -> None:
    """The collection's bound is an idle timeout, not a total budget: while bytes keep
    arriving (a large backlog from a slow remote engine) its deadline moves on, so only an
    engine that sent nothing for ``ENGINE_GRACE`` seconds is given up on."""
    last = -1
    while True:
        got = sum(c.written for c in followers.copies.values())
        if got != last:
            last = got
            scope.deadline = anyio.current_time() + ENGINE_GRACE
            extend(scope.deadline)
        await anyio.sleep(min(every, ENGINE_GRACE / 4))


async def _save_positions(followers: Followers,
                          save: Callable[[dict[str, Position]], None]) -> None:
    """Every second, and soon after a file switch, in a worker thread (the state file is
    fsynced: a slow disk must not stall the followers)."""
    last: dict[str, Position] = {}
    switched = anyio.Event()

    def on_switch() -> None:
        switched.set()

    followers.on_switch = on_switch
    while True:
        with anyio.move_on_after(1.0):
            await switched.wait()
        switched = anyio.Event()
        now = followers.positions()
        if now != last:
            with contextlib.suppress(OSError):
                await anyio.to_thread.run_sync(save, now)
            last = now


async def remove_unstarted(engine: ContainerEngine, name: str) -> bool:
    """After an aborted build or start (no Deployment yet, or one that never reported its
    container): leave no container of ours called ``name`` behind."""
    with anyio.move_on_after(ENGINE_GRACE):
        existing = await engine.find(name)
        if existing is not None and existing.labels.get(TOOL_LABEL) == "1":
            await engine.remove(existing.id)
            return True
    return False
