"""The Deployment's state machine without an engine: a fake engine with scripted
containers and an in-memory log directory (tests/fakes/engine.py). The real-engine tests
(tests/faults, tests/test_detached.py, ...) cover the same paths against dockerd."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from loon_supervisor.engine.containers import ContainerSpec
from loon_supervisor.engine.images import ImageContract
from loon_supervisor.lifecycle import deployment as deployment_module
from loon_supervisor.lifecycle.control import Control
from loon_supervisor.lifecycle.deployment import Deployment, Phase
from loon_supervisor.sinks.session import EventLog, Session
from tests.fakes.engine import FakeContainer, FakeEngine

pytestmark = pytest.mark.anyio

LOG = "/var/log/loon"
SPEC = ContainerSpec(name="fake", image="fake:1", env={}, log_dir=LOG)


def _deployment(tmp_path: Path, services: tuple[str, ...] = ("web", "db"),
                status: str | None = None) -> tuple[Deployment, FakeEngine, EventLog]:
    engine = FakeEngine()
    session = Session(tmp_path, None)
    contract = ImageContract("fake:1", services, LOG, status)
    assert session.events is not None
    return Deployment(engine, "fake", contract, session, Control(), stop_timeout=1), engine, \
        session.events


async def _until(check, limit: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    with anyio.fail_after(limit):
        while not check():
            await anyio.sleep(0.01)


def _container(engine: FakeEngine) -> FakeContainer:
    return next(iter(engine.containers.values()))


async def test_stop_request_walks_every_phase_and_loses_no_byte(tmp_path: Path) -> None:
    dep, engine, _ = _deployment(tmp_path)
    await dep.start(SPEC)
    assert dep.phase is Phase.RUNNING
    c = _container(engine)
    attached = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: dep.follow(on_attached=attached.set))
        await attached.wait()
        assert dep.phase is Phase.FOLLOWING
        c.fs.append(f"{LOG}/web.log", b"one\ntwo\n")
        c.output += b"booted\n"
        await _until(lambda: (tmp_path / "web.log").read_bytes() == b"one\ntwo\n")
        dep.control.request_stop(2)
    assert dep.phase is Phase.COLLECTED
    assert engine.calls == ["create_and_start", "stop"]
    assert (tmp_path / "web.log").read_bytes() == b"one\ntwo\n"
    assert (tmp_path / "container.log").read_bytes() == b"booted\n"
    assert await dep.remove() and dep.phase is Phase.REMOVED
    assert dep.failure is None


async def test_bytes_written_at_the_stop_are_collected_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The container never runs again: a short watch for a start by hand (10 s in the product).
    monkeypatch.setattr(deployment_module, "HAND_RESTART_GRACE", 0.5)
    dep, engine, _ = _deployment(tmp_path)
    await dep.start(SPEC)
    c = _container(engine)
    attached = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: dep.follow(on_attached=attached.set))
        await attached.wait()
        c.fs.append(f"{LOG}/db.log", b"a\n")
        await _until(lambda: (tmp_path / "db.log").read_bytes() == b"a\n")
        # The service writes and the container exits before any follower reads again.
        c.fs.paths[f"{LOG}/db.log"].data += b"last words\n"
        c.exit(3)
    assert dep.failure == "the container exited on its own with code 3"
    assert (tmp_path / "db.log").read_bytes() == b"a\nlast words\n"
    assert dep.phase is Phase.COLLECTED
    assert "stop" in engine.calls


async def test_a_rotation_reads_the_rest_of_the_old_file_first(tmp_path: Path) -> None:
    dep, engine, _ = _deployment(tmp_path, services=("web",))
    await dep.start(SPEC)
    c = _container(engine)
    c.fs.append(f"{LOG}/web.log", b"1\n")
    attached = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: dep.follow(on_attached=attached.set))
        await attached.wait()
        await _until(lambda: (tmp_path / "web.log").read_bytes() == b"1\n")
        c.fs.paths[f"{LOG}/web.log"].data += b"2\n"  # unseen, then renamed away
        c.fs.rename(f"{LOG}/web.log", f"{LOG}/web.log.1")
        c.fs.append(f"{LOG}/web.log", b"3\n")
        await _until(lambda: (tmp_path / "web.log").read_bytes() == b"1\n2\n3\n")
        dep.control.request_stop(15)
    assert (tmp_path / "web.log").read_bytes() == b"1\n2\n3\n"


async def test_hand_over_leaves_the_container_running_at_exact_positions(
        tmp_path: Path) -> None:
    dep, engine, _ = _deployment(tmp_path)
    await dep.start(SPEC)
    c = _container(engine)
    attached = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: dep.follow(on_attached=attached.set))
        await attached.wait()
        c.fs.append(f"{LOG}/web.log", b"x" * 10 + b"\n")
        await _until(lambda: (tmp_path / "web.log").stat().st_size == 11)
        dep.control.request_hand_over()
    assert dep.phase is Phase.HANDED_OVER
    assert c.running and "stop" not in engine.calls
    assert dep.positions()["web"].pos == 11


async def test_a_new_owner_collects_only_what_the_dead_one_missed(tmp_path: Path) -> None:
    first, engine, _ = _deployment(tmp_path)
    cid = await first.start(SPEC)
    c = _container(engine)
    attached = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: first.follow(on_attached=attached.set))
        await attached.wait()
        c.fs.append(f"{LOG}/web.log", b"seen\n")
        await _until(lambda: (tmp_path / "web.log").read_bytes() == b"seen\n")
        first.control.request_hand_over()
    saved = first.positions()
    c.fs.append(f"{LOG}/web.log", b"missed\n")
    c.output += b"out\n"
    second = Deployment(engine, "fake", first.contract, Session(tmp_path, None), Control(),
                        stop_timeout=1)
    second.adopt(cid)
    await second.stop()
    await second.collect(saved=saved, output=True)
    assert second.phase is Phase.COLLECTED
    assert (tmp_path / "web.log").read_bytes() == b"seen\nmissed\n"
    assert (tmp_path / "container.log").read_bytes() == b"out\n"


async def test_a_fatal_service_fails_the_run(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deployment_module, "STATUS_INTERVAL", 0.01)
    dep, engine, _ = _deployment(tmp_path, status="status")
    await dep.start(SPEC)
    c = _container(engine)
    c.status = b"web RUNNING pid 1, uptime 0:00:05\ndb FATAL Exited too quickly\n"
    await dep.follow()
    assert dep.failure == "service db is FATAL"
    assert dep.phase is Phase.COLLECTED


async def test_an_engine_that_hangs_on_stop_is_given_up_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deployment_module, "ENGINE_GRACE", 0.2)
    dep, engine, events = _deployment(tmp_path)
    await dep.start(SPEC)
    engine.hang.add("stop")
    dep.control.request_stop(2)
    with anyio.fail_after(10):
        await dep.follow()
    assert dep.teardown_failed
    assert "did not answer within 1s while stopping the container" in (dep.failure or "")
    assert dep.phase is Phase.STOPPED  # nothing collected from an engine that hangs
    events.close()
    assert "did not answer" in (tmp_path / "out.log").read_text()


async def test_the_final_collection_gives_up_only_on_an_idle_engine(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A slow engine that keeps sending (a large backlog) is waited for well past the
    bound; one that sends nothing for the bound is given up on (issue 23)."""
    monkeypatch.setattr(deployment_module, "ENGINE_GRACE", 0.3)
    for pace, completes in (((0.05, 10), True), ((0.6, 10), False)):
        (tmp_path / str(pace[0])).mkdir()
        dep, engine, events = _deployment(tmp_path / str(pace[0]))
        await dep.start(SPEC)
        c = _container(engine)
        c.fs.append(f"{LOG}/web.log", b"x" * 199 + b"\n")  # 20 chunks: 1 s at 0.05 s each
        c.pace = pace
        await dep.stop()
        with anyio.fail_after(10):
            await dep.collect()
        events.close()
        got = (tmp_path / str(pace[0]) / "web.log").read_bytes()
        if completes:
            assert not dep.teardown_failed and dep.phase is Phase.COLLECTED, dep.failure
            assert got == b"x" * 199 + b"\n"
        else:
            assert dep.teardown_failed
            assert "while collecting the final log bytes" in (dep.failure or "")


async def test_a_second_signal_kills(tmp_path: Path) -> None:
    dep, engine, _ = _deployment(tmp_path)
    await dep.start(SPEC)
    engine.hang.add("stop")
    dep.control.request_stop(2)
    dep.control.request_kill()
    with anyio.fail_after(10):
        await dep.follow()
    assert "kill" in engine.calls and dep.phase is Phase.COLLECTED


async def test_transitions_out_of_order_are_refused(tmp_path: Path) -> None:
    dep, _, _ = _deployment(tmp_path)
    with pytest.raises(RuntimeError, match="is new, not running"):
        await dep.follow()
    await dep.start(SPEC)
    with pytest.raises(RuntimeError, match="is running, not new"):
        await dep.start(SPEC)
