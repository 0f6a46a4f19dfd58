"""`loon restart` is a planned event: the follower (background logger or foreground run)
sees the container through its restart and continues the same session files, nothing lost
and nothing doubled; the deployment keeps running (issue 31)."""

from __future__ import annotations

import json
import signal
import time

import pytest

from tests.engine_helpers import Deployment, containers_named, wait_until
from tests.faults.support import use_log_source
from tests.test_compose_verbs import started_at

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("engine")]


def counter(name: str, period: str = "0.05") -> str:
    """Numbered lines that go on across container restarts: each run starts after the last
    line its file holds, so the host file is exactly `name 1..n` iff nothing was lost or
    doubled."""
    return (f'i=$(wc -l < /var/log/loon/{name}.log); i=$((i+0)); '
            f'while :; do i=$((i+1)); echo "{name} $i"; sleep {period}; done')


def lines(d: Deployment, name: str) -> list[str]:
    path = d.session() / f"{name}.log"
    return path.read_text().splitlines() if path.exists() else []


def numbered(d: Deployment, name: str) -> None:
    got = lines(d, name)
    assert got == [f"{name} {i}" for i in range(1, len(got) + 1)], got[:5]


def restart_and_check(d: Deployment) -> None:
    """Restart with `loon restart`; the same container runs on, the follower continues."""
    wait_until(lambda: len(lines(d, "c")) > 20, timeout=30)
    before = containers_named(d.name)[0]
    started = started_at(d.name)
    r = d.loon("restart", "--name", d.name, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "continues the same session files" in r.stdout, r.stdout
    after = containers_named(d.name)[0]
    assert after["Id"] == before["Id"] and after["State"] == "running"
    assert started_at(d.name) > started
    n = len(lines(d, "c"))
    wait_until(lambda: len(lines(d, "c")) > n + 20, timeout=30)  # lines of the new run
    status = d.loon("status", "--name", d.name)
    assert status.returncode == 0, status.stdout + status.stderr
    assert "running" in status.stdout
    out = (d.session() / "out.log").read_text()
    assert "restarted by `loon restart` (pid" in out, out
    assert "exited on its own" not in out
    assert containers_named(d.name)[0]["State"] == "running"
    for name in ("c", "t"):
        numbered(d, name)


@pytest.mark.parametrize("log_source", ["exec", "hostdir"])
def test_restart_under_the_background_logger(deploy, log_source: str) -> None:  # type: ignore[no-untyped-def]
    d = deploy({"c": counter("c"), "t": counter("t", "0.01")})
    use_log_source(d, log_source)
    result = d.run("-d", timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    state = d.project / ".build-files" / f"state.{d.name}.json"
    pid = json.loads(state.read_text())["logger_pid"]
    restart_and_check(d)
    restart_and_check(d)  # twice: the second restart is no crash loop, no doubled line
    assert json.loads(state.read_text())["logger_pid"] == pid
    time.sleep(1.5)  # a position save after the restarts
    down = d.run("-D", timeout=120)
    assert down.returncode == 0, down.stdout + down.stderr
    assert containers_named(d.name) == []
    for name in ("c", "t"):
        numbered(d, name)
        assert len(lines(d, name)) > 40


def test_restart_under_a_foreground_run(deploy) -> None:  # type: ignore[no-untyped-def]
    d = deploy({"c": counter("c"), "t": counter("t", "0.01")})
    proc = d.start()
    d.wait_out_log("Loon is up", timeout=180)
    restart_and_check(d)
    assert proc.poll() is None
    status = d.loon("status", "--name", d.name)
    assert "foreground pid" in status.stdout, status.stdout
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert containers_named(d.name) == []
    for name in ("c", "t"):
        numbered(d, name)


def test_restart_with_nobody_following_says_so_and_attach_continues(deploy) -> None:  # type: ignore[no-untyped-def]
    """The logger died (kill -9): `loon restart` still restarts, says that nobody follows,
    leaves no marker behind, and `loon attach` continues the same files."""
    import os

    d = deploy({"c": counter("c")})
    assert d.run("-d", timeout=180).returncode == 0
    state = d.project / ".build-files" / f"state.{d.name}.json"
    os.kill(json.loads(state.read_text())["logger_pid"], signal.SIGKILL)
    wait_until(lambda: len(lines(d, "c")) > 5, timeout=30)
    r = d.loon("restart", "--name", d.name, timeout=120)
    assert r.returncode == 0 and "nobody follows it" in r.stdout, r.stdout + r.stderr
    assert not (d.project / ".build-files" / f"restart.{d.name}.json").exists()
    assert containers_named(d.name)[0]["State"] == "running"
    a = d.loon("attach", "--name", d.name)
    assert a.returncode == 0 and "re-attached" in a.stdout, a.stdout + a.stderr
    n = len(lines(d, "c"))
    wait_until(lambda: len(lines(d, "c")) > n + 10, timeout=30)
    assert d.run("-D", timeout=120).returncode == 0
    numbered(d, "c")


@pytest.mark.parametrize("log_source", ["exec", "hostdir"])
def test_docker_restart_by_hand_under_the_background_logger(deploy, log_source: str) -> None:  # type: ignore[no-untyped-def]
    """`docker restart` typed by an operator, not `loon restart`: the logger sees the
    container run again, says it was restarted outside loon, continues the same files and
    the deployment stays (it used to be "exited on its own" and removed)."""
    import subprocess

    d = deploy({"c": counter("c"), "t": counter("t", "0.01")})
    use_log_source(d, log_source)
    result = d.run("-d", timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    state = d.project / ".build-files" / f"state.{d.name}.json"
    pid = json.loads(state.read_text())["logger_pid"]
    wait_until(lambda: len(lines(d, "c")) > 20, timeout=30)
    before = containers_named(d.name)[0]
    started = started_at(d.name)
    r = subprocess.run(["docker", "restart", "-t", "5", d.name], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out_log = d.session() / "out.log"
    wait_until(lambda: "the container runs again (restarted outside loon)"
               in out_log.read_text(), timeout=60)
    n = len(lines(d, "c"))
    wait_until(lambda: len(lines(d, "c")) > n + 20, timeout=30)  # lines of the new run
    after = containers_named(d.name)[0]
    assert after["Id"] == before["Id"] and after["State"] == "running"
    assert started_at(d.name) > started
    status = d.loon("status", "--name", d.name)
    assert status.returncode == 0, status.stdout + status.stderr
    assert json.loads(state.read_text())["logger_pid"] == pid
    out = out_log.read_text()
    assert "the container was restarted outside loon (`docker restart`" in out, out
    assert "exited on its own" not in out, out
    time.sleep(1.5)  # a position save after the restart
    down = d.run("-D", timeout=120)
    assert down.returncode == 0, down.stdout + down.stderr
    assert containers_named(d.name) == []
    for name in ("c", "t"):
        numbered(d, name)
        assert len(lines(d, name)) > n
