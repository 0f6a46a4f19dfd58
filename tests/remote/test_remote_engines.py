"""Remote engines, on loopback only: tcp + client-certificate TLS (a private dockerd), a
Docker context from the CLI's store, and ssh:// through Debian's sshd. Each runs the real
up flow with a busybox image and checks the host files byte for byte."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, base_config
from tests.engine_helpers import wait_until
from tests.images import write_context
from tests.remote.support import SshServer, TlsEngine
from tests.remote.support import write_context as write_docker_context
from tests.test_detached import writer

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("engine")]
COUNT = 3000


def paced(name: str, pause_us: int) -> str:
    """COUNT lines, ``pause_us`` apart: still writing when a test breaks the connection."""
    return (f'seq 1 {COUNT} | while read n; do echo "{name} $n"; usleep {pause_us}; done; '
            "exec sleep 100000")


def expected(name: str, count: int = COUNT) -> bytes:
    return "".join(f"{name} {i}\n" for i in range(1, count + 1)).encode()


class Remote:
    """A deployment whose engine is chosen by environment variables only."""

    def __init__(self, tmp: Path, engine_env: dict[str, str], pause_us: int = 0) -> None:
        self.tmp = tmp
        self.name = f"loon-test-{uuid.uuid4().hex[:8]}"
        ctx = write_context(tmp / "image", {n: paced(n, pause_us) if pause_us
                                            else writer(n, COUNT) for n in ("alpha", "beta")})
        self.data = tmp / "data"
        self.config = tmp / "config.json"
        self.config.write_text(json.dumps(base_config(
            self.data, containerName=self.name, imageTag=f"loon-test:{self.name}",
            imageDirectory=str(ctx), networkMode="none", buildNetworkMode="host",
            minioSourceUrl=None, stopTimeout=3), indent=2))
        self.project = tmp / "project"
        self.project.mkdir()
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("LOON_", "DOCKER_"))}
        self.env.update(engine_env, LOON_PROJECT_ROOT=str(self.project))

    def build_py(self, *args: str) -> list[str]:
        return [sys.executable, str(ROOT / "build.py"), "--config-file", str(self.config),
                *args]

    def run(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.build_py(*args), env=self.env, cwd=self.tmp,
                              capture_output=True, text=True, timeout=timeout)

    def session(self) -> Path:
        return (self.project / "logs" / "latest").resolve()

    def complete(self) -> bool:
        s = self.session()
        return all((s / f"{n}.log").exists() and (s / f"{n}.log").read_bytes() == expected(n)
                   for n in ("alpha", "beta"))

    def why(self) -> str:
        """How the session files differ from the expected ones, and the session's events
        (a failure in CI must say what happened, not only that it did)."""
        s = self.session()
        parts = []
        for n in ("alpha", "beta"):
            f = s / f"{n}.log"
            got = f.read_bytes() if f.exists() else b""
            lines = got.decode(errors="replace").splitlines()
            dups = len(lines) - len(set(lines))
            parts.append(f"{n}.log: {len(got)} bytes of {len(expected(n))}, {len(lines)} "
                         f"lines, {dups} doubled")
        out = s / "out.log"
        return "\n".join(parts) + "\n--- out.log ---\n" + (
            out.read_text(errors="replace")[-6000:] if out.exists() else "(none)")


@pytest.fixture
def tls_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsEngine]:
    engine = TlsEngine(Path(f"/tmp/ltls-{uuid.uuid4().hex[:6]}"))
    try:
        engine.start()
        yield engine
    finally:
        engine.destroy()


def test_tcp_tls_engine_up_flow_ctrl_c(tls_engine: TlsEngine, tmp_path: Path) -> None:
    r = Remote(tmp_path, tls_engine.env())
    proc = subprocess.Popen(r.build_py(), env=r.env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: (r.project / "logs" / "latest" / "out.log").exists()
                   and "Loon is up" in (r.project / "logs" / "latest" / "out.log").read_text(),
                   timeout=180)
        wait_until(r.complete, timeout=60)
        out = (r.session() / "out.log").read_text()
        assert f"engine: {tls_engine.url} (DOCKER_HOST, TLS, remote)" in out
        assert "is a directory on the engine's machine" in out
        assert tls_engine.docker("ps", "-q", "--filter", f"name={r.name}").stdout.strip()
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, output
    assert r.complete()
    assert tls_engine.docker("ps", "-aq").stdout.strip() == ""


def test_wrong_client_certificate_is_one_sentence(tls_engine: TlsEngine,
                                                  tmp_path: Path) -> None:
    r = Remote(tmp_path, {**tls_engine.env(), "DOCKER_CERT_PATH": str(tls_engine.wrong_certs)})
    result = r.run()
    assert result.returncode == 1, result.stdout + result.stderr
    text = result.stdout + result.stderr
    assert "Traceback" not in text
    [line] = [ln for ln in text.splitlines() if ln.startswith("error:")]
    assert "TLS" in line and "DOCKER_CERT_PATH" in line


def test_remote_validation_creates_no_local_directory(tls_engine: TlsEngine,
                                                      tmp_path: Path) -> None:
    r = Remote(tmp_path, tls_engine.env())
    result = r.run("-e")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "on the engine's machine" in result.stdout
    assert not r.data.exists()


def test_docker_context_is_used(tls_engine: TlsEngine, tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_docker_context(home, "lab", tls_engine.url, tls_engine.certs)
    r = Remote(tmp_path, {"DOCKER_CONTEXT": "lab", "HOME": str(home)})
    up = r.run("-d")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert r.name in tls_engine.docker("ps", "--format", "{{.Names}}").stdout
        assert "DOCKER_CONTEXT lab" in (r.session() / "out.log").read_text()
        status = subprocess.run([sys.executable, "-m", "loon_supervisor", "status",
                                 "--config-file", str(r.config)], env=r.env, cwd=tmp_path,
                                capture_output=True, text=True, timeout=60)
        assert f"{tls_engine.url} (DOCKER_CONTEXT lab, TLS, remote)" in status.stdout
        wait_until(r.complete, timeout=60)
    finally:
        down = r.run("-D")
    assert down.returncode == 0, down.stdout + down.stderr
    assert tls_engine.docker("ps", "-aq").stdout.strip() == ""
    assert r.complete()


@pytest.fixture
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    """sshd whose sessions reach a private engine (never the shared one)."""
    engine = TlsEngine(Path(f"/tmp/lsshd-{uuid.uuid4().hex[:6]}"))
    server = SshServer(tmp_path_factory.mktemp("sshd"), engine_host=engine.local)
    server.engine = engine  # type: ignore[attr-defined]
    try:
        engine.start()
        server.start()
        yield server
    finally:
        server.stop()
        engine.destroy()


def test_ssh_engine_survives_a_dropped_connection(sshd: SshServer, tmp_path: Path) -> None:
    """The background logger over ssh: kill the sshd processes serving it mid-run; it
    reconnects and the files stay byte-identical (nothing lost, nothing doubled)."""
    r = Remote(tmp_path, sshd.env(), pause_us=3000)  # ~10 s of lines: the drop is mid-way
    try:
        up = r.run("-d")
        assert up.returncode == 0, up.stdout + up.stderr
        out = r.session() / "out.log"
        assert "engine: ssh://root@127.0.0.1 (DOCKER_HOST, remote)" in out.read_text()
        time.sleep(0.5)
        assert sshd.engine.docker("ps", "-q", "--filter",  # type: ignore[attr-defined]
                                  f"name={r.name}").stdout.strip()
        assert not r.complete()  # still writing
        assert sshd.drop_sessions() >= 1
        try:
            wait_until(r.complete, timeout=120)
        except AssertionError:
            raise AssertionError(r.why()) from None
        assert "re-attached" in out.read_text(), r.why()  # the drop broke the streams
        # ... and it is said in those sentences, not in tracebacks (aiodocker's ssh relay)
        assert "Traceback" not in (r.session() / "logger.stderr").read_text()
    finally:
        down = r.run("-D")
    assert down.returncode == 0, down.stdout + down.stderr
    assert r.complete(), r.why() + "\n--- -D ---\n" + down.stdout + down.stderr
    assert sshd.engine.docker("ps", "-aq").stdout.strip() == ""  # type: ignore[attr-defined]
