"""DOCKER_HOST=ssh://root@127.0.0.1:<port>: the same up flow through Debian's sshd, and an ssh
connection killed mid-run that the background logger survives without lost or doubled bytes."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.engine_helpers import SIGINT, container_files, containers_named, stop_with, wait_until
from tests.remote.ssh_server import SshServer
from tests.remote.tls_engine import TlsEngine
from tests.test_detached import writer
from tests.test_up_flow import ticker


@pytest.fixture(scope="module")
def sshd(tls_engine: TlsEngine) -> Iterator[SshServer]:
    server = SshServer(tls_engine.host)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def on_ssh(sshd: SshServer, monkeypatch: pytest.MonkeyPatch) -> SshServer:
    for key in ("DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_CONTEXT", "SSH_AUTH_SOCK"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("DOCKER_HOST", sshd.docker_host)
    monkeypatch.setenv("HOME", str(sshd.home))  # the throw-away key and known_hosts
    return sshd


def test_up_flow_over_ssh_byte_identical_and_ctrl_c(deploy, on_ssh: SshServer,  # type: ignore[no-untyped-def]
                                                    tls_engine: TlsEngine) -> None:
    services = {f"s{i}": f'seq 1 20000 | sed "s/^/s{i} line /"; exec sleep 100000'
                for i in range(3)}
    d = deploy(services)
    proc = d.start()
    d.wait_out_log("Loon is up")
    session = d.session()
    assert f"engine: {on_ssh.docker_host}" in (session / "out.log").read_text()
    expected = {f"s{i}": "".join(f"s{i} line {n}\n" for n in range(1, 20001)).encode()
                for i in range(3)}
    wait_until(lambda: all((session / f"{n}.log").exists() and
                           (session / f"{n}.log").stat().st_size == len(b)
                           for n, b in expected.items()), timeout=60)
    inside = container_files(d.name)
    # It runs on the private engine that the ssh session reaches, not the shared one.
    private = subprocess.run(["docker", "-H", tls_engine.host, "ps", "-q", "--filter",
                              f"name={d.name}"], capture_output=True, text=True)
    assert private.stdout.strip(), "the container is not on the engine behind ssh"
    code, out = stop_with(proc, SIGINT)
    assert code == 130, out
    for name, data in expected.items():
        assert (session / f"{name}.log").read_bytes() == data == inside[f"{name}.log"], name
    assert containers_named(d.name) == []


def test_ssh_connection_killed_background_logger_survives(deploy, on_ssh: SshServer) -> None:  # type: ignore[no-untyped-def]
    d = deploy({"w1": writer("w1", 8000), "t": ticker("t", "0.1")})
    result = d.run("-d", timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    session = d.session()
    wait_until(lambda: (session / "w1.log").exists()
               and (session / "w1.log").stat().st_size > 2000, timeout=30)
    served = on_ssh.session_pids()
    assert served, "no ssh connection to kill"
    for pid in served:
        subprocess.run(["kill", "-9", str(pid)], check=True)
    time.sleep(1)
    expected = "".join(f"w1 {i}\n" for i in range(1, 8001))
    wait_until(lambda: (session / "w1.log").read_text() == expected, timeout=60, interval=0.5)
    n = len((session / "t.log").read_text())
    wait_until(lambda: len((session / "t.log").read_text()) > n + 20, timeout=20)
    down = d.run("-D", timeout=120)
    assert down.returncode == 0, down.stdout + down.stderr
    t = (session / "t.log").read_text()
    assert t.endswith("bye t\n")
    lines = t.splitlines()[:-1]
    assert lines == [f"t {i}" for i in range(1, len(lines) + 1)]
    assert (session / "w1.log").read_text() == expected
    out_log = (session / "out.log").read_text()
    assert "re-attached" in out_log or "the Docker engine is back" in out_log, out_log
    assert containers_named(d.name) == []
