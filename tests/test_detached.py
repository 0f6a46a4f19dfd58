"""Detached mode with a real background logger: -d, -D, resume after kill -9, broken
streams, and an engine restart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import aiodocker
import anyio
import pytest

from tests.engine_helpers import (
    Deployment,
    PrivateEngine,
    container_files,
    containers_named,
    make_deployment,
    wait_until,
)
from tests.faults.support import use_log_source
from tests.test_up_flow import ticker

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("engine")]
# The resume cases run on both log sources (docs/log-faults.md): exec and hostdir.
BOTH_SOURCES = pytest.mark.parametrize("log_source", ["exec", "hostdir"])


def state(d: Deployment) -> dict:
    return json.loads((d.project / ".build-files" / f"state.{d.name}.json").read_text())


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().split(") ")[-1][:1] != "Z"


def writer(name: str, count: int) -> str:
    """Writes ``count`` numbered lines quickly (about 1-2 kHz), then stays quiet."""
    return (f'seq 1 {count} | while read n; do echo "{name} $n"; usleep 300; done; '
            "exec sleep 100000")


def files_match_container(d: Deployment, names: list[str]) -> bool:
    """Host files equal the container's, and did not change while the container's were
    read: a logger that hands lines over every few ms can otherwise match a snapshot of a
    file that is still being written, exactly one read-time behind."""
    session = d.session()

    def host() -> dict[str, bytes | None]:
        return {n: (session / f"{n}.log").read_bytes() if (session / f"{n}.log").exists()
                else None for n in names}

    before = host()
    inside = container_files(d.name)
    after = host()
    return all(before[n] is not None and before[n] == inside.get(f"{n}.log") == after[n]
               for n in names)


@BOTH_SOURCES
def test_detached_keeps_logging_and_down_stops_everything(deploy, log_source: str) -> None:  # type: ignore[no-untyped-def]
    d = deploy({"alpha": ticker("alpha"), "beta": ticker("beta", "0.02")})
    use_log_source(d, log_source)
    started = time.monotonic()
    result = d.run("-vd", timeout=120)
    took = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    assert "background logger" in result.stdout and "-D" in result.stdout
    st = state(d)
    pid = st["logger_pid"]
    assert st["attached"] and alive(pid)
    assert st["log_source"] == log_source
    host_dir = d.project / ".build-files" / "service-logs" / d.name
    assert host_dir.is_dir() == (log_source == "hostdir")
    session = d.session()
    size = (session / "alpha.log").stat().st_size
    wait_until(lambda: (session / "alpha.log").stat().st_size > size + 200, timeout=10)
    down_started = time.monotonic()
    down = d.run("-D", timeout=120)
    assert down.returncode == 0, down.stdout + down.stderr
    assert time.monotonic() - down_started < 3 + 10
    assert containers_named(d.name) == []
    assert not alive(pid)
    for name in ("alpha", "beta"):
        assert (session / f"{name}.log").read_text().endswith(f"bye {name}\n")
    assert "background logger exiting" in (session / "out.log").read_text()
    assert not host_dir.exists()  # removed after the final collection
    print(f"-d returned after {took:.1f}s")


@BOTH_SOURCES
def test_logger_killed_then_resumed_is_byte_identical(deploy, log_source: str) -> None:  # type: ignore[no-untyped-def]
    names = ["w1", "w2", "w3"]
    d = deploy({n: writer(n, 6000) for n in names})
    use_log_source(d, log_source)
    assert d.run("-d", timeout=120).returncode == 0
    session = d.session()
    wait_until(lambda: (session / "w1.log").stat().st_size > 2000, timeout=20)
    os.kill(state(d)["logger_pid"], signal.SIGKILL)
    time.sleep(1.0)
    status = d.loon("status", "--config-file", str(d.config))
    assert status.returncode == 1 and "not running" in status.stdout
    again = d.loon("attach", "--config-file", str(d.config))
    assert again.returncode == 0 and "re-attached" in again.stdout, again.stdout + again.stderr
    wait_until(lambda: files_match_container(d, names), timeout=60, interval=0.5)
    for n in names:
        lines = (session / f"{n}.log").read_text().splitlines()
        assert lines == [f"{n} {i}" for i in range(1, 6001)]
    status = d.loon("status", "--config-file", str(d.config))
    assert status.returncode == 0, status.stdout
    said = [ln.split() for ln in status.stdout.splitlines()
            if ln.strip().startswith("log source")]
    assert said and said[0][2] == log_source, status.stdout


async def _kill_tails(name: str) -> None:
    async with aiodocker.Docker() as docker:
        c = (await docker.containers.list(filters={"name": [f"^/{name}$"]}))[0]
        ex = await c.exec(["sh", "-c", "kill $(pidof tail)"])
        await ex.start(detach=True)


def test_in_container_stream_killed_reconnects(deploy) -> None:  # type: ignore[no-untyped-def]
    """exec only: with hostdir nothing of ours runs in the container to be killed."""
    names = ["w1", "w2"]
    d = deploy({n: writer(n, 6000) for n in names})
    use_log_source(d, "exec")
    assert d.run("-d", timeout=120).returncode == 0
    session = d.session()
    wait_until(lambda: (session / "w1.log").stat().st_size > 2000, timeout=20)
    anyio.run(_kill_tails, d.name, backend="asyncio")
    wait_until(lambda: files_match_container(d, names), timeout=60, interval=0.5)
    for n in names:
        assert (session / f"{n}.log").read_text().splitlines() == [
            f"{n} {i}" for i in range(1, 6001)]
    out = (session / "out.log").read_text()
    assert "re-attaching at byte" in out and "re-attached at byte" in out


def test_service_lines_that_read_like_tail_notices_are_data(deploy) -> None:  # type: ignore[no-untyped-def]
    """exec only (tail's notices exist only there): a service's own ``tail: ...`` lines reach
    the host file and count towards the position, so a re-attach (tails killed) after them
    adds no duplicate."""
    count = 1500
    fake = ("tail: inotify resources exhausted", "/usr/bin/tail: inotify cannot be used, "
            "reverting to polling", "/usr/bin/tail: '/var/log/loon/w1.log' has been replaced; "
            " following new file", "tail: /var/log/loon/w1.log: file truncated")
    echoes = "; ".join(f"echo {json.dumps(line)}" for line in fake)
    d = deploy({"w1": f'seq 1 {count} | while read n; do echo "w1 $n"; {echoes}; usleep 500; '
                      'done; exec sleep 100000'})
    use_log_source(d, "exec")
    assert d.run("-d", timeout=120).returncode == 0
    session = d.session()
    wait_until(lambda: (session / "w1.log").stat().st_size > 20000, timeout=20)
    anyio.run(_kill_tails, d.name, backend="asyncio")
    wait_until(lambda: files_match_container(d, ["w1"]), timeout=60, interval=0.5)
    expected = "".join(f"w1 {i}\n" + "".join(f"{line}\n" for line in fake)
                       for i in range(1, count + 1))
    assert (session / "w1.log").read_text() == expected
    # the kill did force a re-attach after such lines, and it added nothing
    wait_until(lambda: "re-attached at byte" in (session / "out.log").read_text(), timeout=30)
    assert (session / "w1.log").read_text() == expected
    assert "w1 follower: " not in (session / "out.log").read_text()  # no notice from data
    assert d.run("-D", timeout=60).returncode == 0


@BOTH_SOURCES
def test_engine_restart_is_survived(tmp_path: Path, log_source: str) -> None:
    engine = PrivateEngine(Path(f"/tmp/ldk-{uuid.uuid4().hex[:6]}"))
    engine.base.mkdir()
    d = make_deployment(tmp_path, {"w1": writer("w1", 8000), "t": ticker("t", "0.1")})
    use_log_source(d, log_source)
    env = {"DOCKER_HOST": engine.host}
    try:
        engine.start()
        result = d.run("-d", timeout=180, **env)
        assert result.returncode == 0, result.stdout + result.stderr
        session = d.session()
        wait_until(lambda: (session / "w1.log").stat().st_size > 2000, timeout=20)
        engine.stop()
        time.sleep(2)
        engine.start()
        wait_until(lambda: "the Docker engine is back" in (session / "out.log").read_text(),
                   timeout=60, interval=0.5)
        expected = "".join(f"w1 {i}\n" for i in range(1, 8001))
        wait_until(lambda: (session / "w1.log").read_text() == expected, timeout=60,
                   interval=0.5)
        n = len((session / "t.log").read_text())
        wait_until(lambda: len((session / "t.log").read_text()) > n + 20, timeout=10)
        down = d.run("-D", timeout=120, **env)
        assert down.returncode == 0, down.stdout + down.stderr
        assert (session / "t.log").read_text().endswith("bye t\n")
        lines = (session / "t.log").read_text().splitlines()[:-1]
        assert lines == [f"t {i}" for i in range(1, len(lines) + 1)]
    finally:
        subprocess.run(["pkill", "-9", "-f", f"_logger {d.name}"], check=False)
        engine.destroy()


async def _follow_once(name: str, inode_delta: int) -> tuple[bytes, str | None, list[str]]:
    """Follow w1.log through the exec source, telling it the inode the offset belongs to
    (the real one plus ``inode_delta``); what came until the first pause, and the event."""
    from loon_supervisor.engine.docker_engine import DockerEngine
    from loon_supervisor.streams.sources.exec import ExecSource

    notices: list[str] = []
    async with aiodocker.Docker() as docker:
        c = (await docker.containers.list(filters={"name": [f"^/{name}$"]}))[0]
        src = ExecSource(DockerEngine(docker), c.id)
        await src.prepare("loon-test-probe")
        path = "/var/log/loon/w1.log"
        inode = (await src.stat([path]))[path][0]
        got = b""
        async with src.open_follow(path, 3, "loon-test-probe/w1", notices.append,
                                   inode=inode + inode_delta) as followed:
            with anyio.move_on_after(3):
                while (data := await followed.receive()) is not None:
                    got += data
                    if got.endswith(b"w1 10\n"):
                        break
        return got, followed.event, notices


def test_exec_follower_refuses_a_file_replaced_between_stat_and_open(deploy) -> None:  # type: ignore[no-untyped-def]
    """exec: the shell checks the inode right before tail opens the file; another file at
    the path ends the follower with ``replaced`` before any byte (issue 23)."""
    d = deploy({"w1": writer("w1", 10)})
    use_log_source(d, "exec")
    assert d.run("-d", timeout=120).returncode == 0
    wait_until(lambda: b"w1 10\n" in (d.session() / "w1.log").read_bytes(), timeout=20)
    got, event, notices = anyio.run(_follow_once, d.name, 1, backend="asyncio")
    assert got == b"" and event == "replaced", (got, notices)
    assert any("was replaced before tail opened it" in n for n in notices), notices
    got, event, _ = anyio.run(_follow_once, d.name, 0, backend="asyncio")
    assert got.startswith(b"1\nw1 2\n") and event is None
    assert d.run("-D", timeout=60).returncode == 0


class RotatingLogsEngine(PrivateEngine):
    """A private engine whose daemon default rotates container logs at 1 KB."""

    def args(self) -> list[str]:
        return [*super().args(), "--log-opt", "max-size=1k"]


def test_container_log_resumes_on_an_engine_that_rotates_logs_by_default(
        tmp_path: Path) -> None:
    """The container names its log driver (json-file, max-size 1 TB), so a daemon default
    of max-size=1k does not rotate its stored output away: container.log resumes after a
    kill -9 + attach by skipping the bytes it has, with every tick once (issue 23)."""
    engine = RotatingLogsEngine(Path(f"/tmp/ldk-{uuid.uuid4().hex[:6]}"))
    engine.base.mkdir()
    counter = 'i=0; while :; do i=$((i+1)); echo "tick $i"; usleep 10000; done'
    d = make_deployment(tmp_path, {"w1": writer("w1", 10)}, main=counter)
    use_log_source(d, "exec")
    env = {"DOCKER_HOST": engine.host}
    try:
        engine.start()
        result = d.run("-d", timeout=180, **env)
        assert result.returncode == 0, result.stdout + result.stderr
        info = subprocess.run(["docker", "-H", engine.host, "inspect", "--format",
                               "{{json .HostConfig.LogConfig}}", d.name], capture_output=True,
                              text=True, check=True).stdout
        log_config = json.loads(info)
        assert log_config["Type"] == "json-file" and log_config["Config"]["max-size"] == "1t"
        session = d.session()
        wait_until(lambda: (session / "container.log").stat().st_size > 3000, timeout=30)
        os.kill(state(d)["logger_pid"], signal.SIGKILL)
        time.sleep(1.5)  # the engine's stored output grows past 1 KB meanwhile
        attach = subprocess.run([sys.executable, "-m", "loon_supervisor", "attach", "--name",
                                 d.name], cwd=d.root, env=d.env(**env), capture_output=True,
                                text=True, timeout=120)
        assert attach.returncode == 0, attach.stdout + attach.stderr
        n = (session / "container.log").stat().st_size
        wait_until(lambda: (session / "container.log").stat().st_size > n + 2000, timeout=30)
        down = d.run("-D", timeout=120, **env)
        assert down.returncode == 0, down.stdout + down.stderr
        ticks = [ln for ln in (session / "container.log").read_text().splitlines()
                 if ln.startswith("tick ")]
        assert ticks == [f"tick {i}" for i in range(1, len(ticks) + 1)]
    finally:
        subprocess.run(["pkill", "-9", "-f", f"_logger {d.name}"], check=False)
        engine.destroy()


def test_logger_exits_by_itself_when_the_container_stops(deploy) -> None:  # type: ignore[no-untyped-def]
    d = deploy({"alpha": ticker("alpha")}, main="sleep 4; echo main ends; exit 3")
    assert d.run("-d", timeout=120).returncode == 0
    pid = state(d)["logger_pid"]
    wait_until(lambda: not alive(pid), timeout=60)
    out = (d.session() / "out.log").read_text().splitlines()
    assert "background logger exiting: the container exited on its own with code 3" in out[-1]
    assert "main ends" in (d.session() / "container.log").read_text()
    assert containers_named(d.name) == []
