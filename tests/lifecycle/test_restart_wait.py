"""A container that stops because it is restarted on purpose (`loon restart`'s marker) or
with the engine (a fresh connection is refused) is waited for, and the followers go on at
their positions; any other stop is an exit (issue 31). Engine-free: the fake engine of
tests/fakes; the real engine runs the same paths in tests/test_restart_keeps.py and
tests/reboot/."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from loon_supervisor.lifecycle import restart_marker
from tests.lifecycle.test_deployment import LOG, SPEC, _container, _deployment, _until

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def _short_hand_restart_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake container runs again 0.3 s after its stop, or never: 2 s tell them apart."""
    from loon_supervisor.lifecycle import deployment

    monkeypatch.setattr(deployment, "HAND_RESTART_GRACE", 2.0)


async def _run_with_stop(tmp_path: Path, engine_away: bool, marker: bool,
                         again: str | None = None) -> tuple[str | None, str, bytes]:
    """``again``: how the container runs again without a marker or an engine restart:
    "by hand" (a new start time, RestartCount reset, as `docker restart` leaves it) or
    "policy" (the restart policy's, after an exit: RestartCount counts it)."""
    dep, engine, events = _deployment(tmp_path, services=("web",))
    await dep.start(SPEC)
    c = _container(engine)
    answers = [not engine_away]

    async def answers_anew() -> bool:
        return answers[0]

    engine.answers_anew = answers_anew  # type: ignore[method-assign]
    attached = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: dep.follow(on_attached=attached.set))
        await attached.wait()
        c.fs.append(f"{LOG}/web.log", b"before\n")
        await _until(lambda: (tmp_path / "web.log").read_bytes() == b"before\n")
        assert dep.cid is not None
        if marker:
            restart_marker.request("fake", dep.cid)
        c.exit(0)
        await anyio.sleep(0.3)  # stopped a while: the engine restarts, or nothing does
        answers[0] = True
        if again is not None:
            c.started_at = "2026-01-01T00:05:00Z"
            c.restart_count += again == "policy"
        if engine_away or marker or again == "by hand":
            c.running, c.stopped = True, anyio.Event()
            c.fs.append(f"{LOG}/web.log", b"after\n")
            await _until(lambda: (tmp_path / "web.log").read_bytes() == b"before\nafter\n")
            assert dep.failure is None
            dep.control.request_stop(15)
        elif again == "policy":
            c.running, c.stopped = True, anyio.Event()
    events.close()
    return dep.failure, (tmp_path / "out.log").read_text(), (tmp_path / "web.log").read_bytes()


@pytest.mark.usefixtures("project")
async def test_a_restart_asked_by_loon_restart_is_waited_for(tmp_path: Path) -> None:
    failure, out, web = await _run_with_stop(tmp_path, engine_away=False, marker=True)
    assert failure is None
    assert "the container runs again (restarted by `loon restart` (pid" in out
    assert web == b"before\nafter\n"
    assert restart_marker.pending("fake", "x") is None


@pytest.mark.usefixtures("project")
async def test_a_stop_with_the_engine_going_away_is_waited_for(tmp_path: Path) -> None:
    failure, out, web = await _run_with_stop(tmp_path, engine_away=True, marker=False)
    assert failure is None
    assert "the Docker engine is going away" in out
    assert "the container runs again (restarted with the Docker engine)" in out
    assert web == b"before\nafter\n"


@pytest.mark.usefixtures("project")
async def test_any_other_stop_is_an_exit(tmp_path: Path) -> None:
    failure, out, _ = await _run_with_stop(tmp_path, engine_away=False, marker=False)
    assert failure == "the container exited on its own with code 0"
    assert "runs again" not in out


@pytest.mark.usefixtures("project")
async def test_a_docker_restart_by_hand_is_waited_for(tmp_path: Path) -> None:
    failure, out, web = await _run_with_stop(tmp_path, engine_away=False, marker=False,
                                             again="by hand")
    assert failure is None
    assert "the container was restarted outside loon (`docker restart`" in out
    assert "the container runs again (restarted outside loon); following it on" in out
    assert "exited on its own" not in out
    assert web == b"before\nafter\n"


@pytest.mark.usefixtures("project")
async def test_a_crash_the_restart_policy_restarts_is_an_exit(tmp_path: Path) -> None:
    failure, out, _ = await _run_with_stop(tmp_path, engine_away=False, marker=False,
                                           again="policy")
    assert failure == "the container exited on its own with code 0"
    assert "outside loon" not in out and "runs again" not in out


@pytest.mark.usefixtures("project")
async def test_a_stale_or_foreign_marker_is_ignored(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    restart_marker.request("fake", "c1")
    assert restart_marker.pending("fake", "c1") is not None
    assert restart_marker.pending("fake", "c2") is None
    monkeypatch.setattr(restart_marker, "VALID_FOR", -100.0)
    assert restart_marker.pending("fake", "c1") is None
    restart_marker.clear("fake", "c2")  # not its marker: kept
    assert restart_marker.marker_path("fake").exists()
    restart_marker.clear("fake", "c1")
    assert not restart_marker.marker_path("fake").exists()
