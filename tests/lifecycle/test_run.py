"""The Run's teardown without an engine (tests/fakes/engine.py): every way a run ends goes
through ``Run.teardown`` (stop -> drain -> collect -> remove -> forget); these are its
paths: a stop the engine never answers, an engine lost after the stop, a second signal, a
hang-up handed over (or not), a removal from a saved state, and the exit codes."""

from __future__ import annotations

import signal
import subprocess
from dataclasses import replace
from pathlib import Path

import anyio
import pytest

from loon_supervisor.engine.containers import ContainerSpec
from loon_supervisor.engine.images import ImageContract
from loon_supervisor.lifecycle import deployment as deployment_module
from loon_supervisor.lifecycle import run as run_module
from loon_supervisor.lifecycle import state as statefile
from loon_supervisor.lifecycle.control import Control
from loon_supervisor.lifecycle.deployment import Phase
from loon_supervisor.lifecycle.run import Outcome, Owner, Run, remove_deployment
from loon_supervisor.lifecycle.state import DeploymentLock, DeploymentState
from loon_supervisor.sinks.reporter import Reporter
from loon_supervisor.sinks.session import Session
from tests.fakes.engine import FakeContainer, FakeEngine

pytestmark = pytest.mark.anyio

LOG = "/var/log/loon"
SPEC = ContainerSpec(name="fake", image="fake:1", env={}, log_dir=LOG)
CONTRACT = ImageContract("fake:1", ("web",), LOG, None)


def _state(session: Path, cid: str) -> DeploymentState:
    return DeploymentState(name="fake", cid=cid, session=session, image="fake:1",
                           services=("web",), log_dir=LOG, status_command=None, url="",
                           stop_timeout=1)


async def _started(project: Path, owner: Owner = Owner.LOGGER
                   ) -> tuple[Run, FakeEngine, FakeContainer, Session]:
    engine = FakeEngine()
    session_dir = project / "logs" / "s"
    session_dir.mkdir(parents=True)
    session = Session(session_dir, None)
    lock = DeploymentLock.acquire("fake")
    assert lock is not None
    run = Run(engine, "fake", CONTRACT, session, Control(), owner=owner, lock=lock,
              stop_timeout=1)
    cid = await run.start(SPEC)
    run.record(_state(session_dir, cid))
    return run, engine, engine.containers[cid], session


async def _follow_until(run: Run, act, check=None) -> None:  # type: ignore[no-untyped-def]
    attached = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: run.follow(on_attached=attached.set))
        with anyio.fail_after(10):
            await attached.wait()
            if check is not None:
                while not check():
                    await anyio.sleep(0.01)
        act()


async def test_a_stop_walks_every_step_and_forgets_the_run(project: Path) -> None:
    run, engine, c, session = await _started(project)
    c.fs.append(f"{LOG}/web.log", b"one\n")
    web = session.log_file("web")
    await _follow_until(run, lambda: run.control.request_stop(signal.SIGTERM),
                        lambda: web.exists() and web.read_bytes() == b"one\n")
    outcome = await run.teardown()
    session.close()
    assert outcome == Outcome(removed=True)
    assert engine.calls == ["create_and_start", "stop", "remove"]
    assert run.dep.phase is Phase.REMOVED and not engine.containers
    assert statefile.load("fake") is None
    assert "background logger exiting: stopped on request; container removed" in \
        session.out_log.read_text()
    assert outcome.exit_code(signal.SIGTERM) == 128 + signal.SIGTERM


async def test_a_stop_the_engine_never_answers_keeps_the_state_for_down(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deployment_module, "ENGINE_GRACE", 0.2)
    run, engine, c, session = await _started(project)
    engine.hang.add("stop")
    await _follow_until(run, lambda: run.control.request_stop(signal.SIGINT))
    with anyio.fail_after(10):
        outcome = await run.teardown()
    session.close()
    assert outcome.teardown_failed and outcome.exit_code(signal.SIGINT) == 1
    assert "remove" not in engine.calls and c.running
    assert statefile.load("fake") is not None  # `loon down` collects and removes later
    assert "while stopping the container" in session.out_log.read_text()


async def test_an_engine_lost_after_the_stop_is_given_up_on_within_the_budget(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deployment_module, "ENGINE_GRACE", 0.2)
    run, engine, c, session = await _started(project)
    engine.hang.add("remove")
    await _follow_until(run, lambda: run.control.request_stop(signal.SIGTERM))
    started = anyio.current_time()
    with anyio.fail_after(10):
        outcome = await run.teardown()
    session.close()
    assert anyio.current_time() - started < 2
    assert outcome.teardown_failed and not outcome.removed
    assert "while removing the container" in (outcome.failure or "")
    assert statefile.load("fake") is not None


async def test_a_second_signal_kills_and_the_run_still_ends_clean(project: Path) -> None:
    run, engine, c, session = await _started(project, Owner.FOREGROUND)
    engine.hang.add("stop")

    def two_signals() -> None:
        run.control.request_stop(signal.SIGINT)
        run.control.request_kill()

    await _follow_until(run, two_signals)
    with anyio.fail_after(10):
        outcome = await run.teardown()
    session.close()
    assert "kill" in engine.calls and outcome.removed and not outcome.teardown_failed
    assert outcome.exit_code(signal.SIGINT) == 130


async def test_a_logger_that_detaches_leaves_the_container_and_its_positions(
        project: Path) -> None:
    run, engine, c, session = await _started(project)
    c.fs.append(f"{LOG}/web.log", b"12345\n")
    web = session.log_file("web")
    await _follow_until(run, run.control.request_hand_over,
                        lambda: web.exists() and web.stat().st_size == 6)
    outcome = await run.teardown()
    session.close()
    assert outcome.handed_over and outcome.exit_code(None) == 0
    assert c.running and "stop" not in engine.calls and "remove" not in engine.calls
    saved = statefile.load("fake")
    assert saved is not None and saved.positions["web"].pos == 6


class _DeadLogger:
    pid = 4242

    def poll(self) -> int:
        return 1


async def test_a_hang_up_whose_logger_fails_stops_and_collects(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run, engine, c, session = await _started(project, Owner.FOREGROUND)

    async def no_logger(state: DeploymentState, lock: DeploymentLock,
                        give_up: anyio.Event | None = None) -> tuple[object, bool]:
        c.fs.append(f"{LOG}/web.log", b"late\n")  # written while the logger failed
        return _DeadLogger(), False

    monkeypatch.setattr(run_module, "start_logger", no_logger)
    await _follow_until(run, run.control.request_hand_over)
    outcome = await run.teardown()
    session.close()
    assert not outcome.handed_over and outcome.removed
    assert session.log_file("web").read_bytes() == b"late\n"
    assert "the background logger did not start; stopping the container" in \
        session.out_log.read_text()


async def test_a_hang_up_hands_the_foreground_run_to_a_logger(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run, engine, c, session = await _started(project, Owner.FOREGROUND)
    given: list[DeploymentState] = []

    async def logger(state: DeploymentState, lock: DeploymentLock,
                     give_up: anyio.Event | None = None
                     ) -> tuple[subprocess.Popen[bytes], bool]:
        given.append(state)
        return _DeadLogger(), True  # type: ignore[return-value]

    monkeypatch.setattr(run_module, "start_logger", logger)
    c.fs.append(f"{LOG}/web.log", b"abc\n")
    web = session.log_file("web")
    await _follow_until(run, run.control.request_hand_over,
                        lambda: web.exists() and web.stat().st_size == 4)
    outcome = await run.teardown()
    session.close()
    assert outcome.handed_over and c.running
    assert given and given[0].positions["web"].pos == 4


async def test_a_removal_from_a_saved_state_collects_only_what_was_missed(
        project: Path) -> None:
    run, engine, c, session = await _started(project)
    c.fs.append(f"{LOG}/web.log", b"seen\n")
    web = session.log_file("web")
    await _follow_until(run, run.control.request_hand_over,
                        lambda: web.exists() and web.read_bytes() == b"seen\n")
    await run.teardown()  # the follower detached (then died)
    run.release()
    session.close()
    c.fs.append(f"{LOG}/web.log", b"missed\n")
    c.output += b"out\n"
    code, found = await remove_deployment(engine, "fake", _quiet())
    assert (code, found) == (0, True)
    assert web.read_bytes() == b"seen\nmissed\n"
    assert session.log_file("container").read_bytes() == b"out\n"
    assert not engine.containers and statefile.load("fake") is None


async def test_a_stopped_container_is_collected_without_a_stop(project: Path) -> None:
    run, engine, c, session = await _started(project)
    run.release()
    session.close()
    c.fs.append(f"{LOG}/web.log", b"last words\n")
    c.exit(3)
    code, _ = await remove_deployment(engine, "fake", _quiet())
    assert code == 0 and "stop" not in engine.calls
    assert session.log_file("web").read_bytes() == b"last words\n"


async def test_transitions_out_of_order_are_refused(project: Path) -> None:
    run, _, _, session = await _started(project)
    with pytest.raises(RuntimeError, match="is running, not stopped"):
        await run.dep.collect()
    with pytest.raises(RuntimeError, match="is running, not stopped or collected"):
        await run.dep.remove()
    session.close()


def test_exit_codes() -> None:
    assert Outcome(handed_over=True, failure="x").exit_code(signal.SIGINT) == 0
    assert Outcome(failure="service web is FATAL").exit_code(None) == 1
    assert Outcome(teardown_failed=True).exit_code(None) == 1
    assert Outcome(down_requested=True).exit_code(signal.SIGTERM) == 0
    assert Outcome(down_requested=True).exit_code(signal.SIGINT) == 130
    assert Outcome().exit_code(None) == 0


async def test_a_run_from_a_state_is_the_one_constructor(project: Path) -> None:
    (project / "s").mkdir()
    state = replace(_state(project / "s", "c1"), crash_loop=(3, 60.0), stop_timeout=7)
    with Session(project / "s", None) as session:
        run = Run.from_state(FakeEngine(), state, session, Control(), owner=Owner.LOGGER)
    assert run.dep.stop_timeout == 7 and run.dep.crash_policy.restarts == 3
    assert run.saved is state and run.dep.contract == state.contract()


def _quiet() -> Reporter:
    return Reporter(None, None)


async def test_a_follow_that_raises_is_still_torn_down(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An engine error out of the follow (here the status stream's) leaves the run in
    FOLLOWING; the teardown still stops, collects and removes."""
    from loon_supervisor.errors import EngineError

    engine = FakeEngine()
    (project / "s").mkdir()
    session = Session(project / "s", None)
    run = Run(engine, "fake", ImageContract("fake:1", ("web",), LOG, "status"), session,
              Control(), owner=Owner.LOGGER, stop_timeout=1)
    cid = await run.start(SPEC)
    run.record(_state(project / "s", cid))
    engine.containers[cid].fs.append(f"{LOG}/web.log", b"kept\n")

    async def broken(cid: str, command: str, interval: float, mark: str):  # type: ignore[no-untyped-def]
        await anyio.sleep(0.3)
        raise EngineError("the status stream broke")
        yield b""  # pragma: no cover

    engine.status_outputs = broken  # type: ignore[method-assign]
    with pytest.raises(BaseException):  # noqa: B017 - the group's EngineError
        await run.follow()
    assert run.dep.phase is Phase.FOLLOWING
    outcome = await run.teardown()
    session.close()
    assert outcome.removed and not engine.containers
    assert session.log_file("web").read_bytes() == b"kept\n"
