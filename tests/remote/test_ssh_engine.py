"""DOCKER_HOST=ssh://root@127.0.0.1 through Debian's sshd to a PRIVATE engine (the authorized
key sets the session's DOCKER_HOST, so the shared engine is never used): the foreground up flow
with Ctrl+C, and volume directories made on the engine's machine by the helper container."""

from __future__ import annotations

import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engine_helpers import wait_until
from tests.remote.support import SshServer, TlsEngine
from tests.remote.test_remote_engines import Remote

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("engine")]


@pytest.fixture
def ssh_to_private(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SshServer,
                                                                               TlsEngine]]:
    engine = TlsEngine(Path(f"/tmp/lssh-{uuid.uuid4().hex[:6]}"))
    server = SshServer(tmp_path_factory.mktemp("sshd"), engine_host=engine.local)
    try:
        engine.start()
        server.start()
        yield server, engine
    finally:
        server.stop()
        engine.destroy()


def test_ssh_up_flow_on_the_private_engine_ctrl_c(ssh_to_private: tuple[SshServer, TlsEngine],
                                                  tmp_path: Path) -> None:
    sshd, engine = ssh_to_private
    r = Remote(tmp_path, sshd.env())
    proc = subprocess.Popen(r.build_py(), env=r.env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: (r.project / "logs" / "latest" / "out.log").exists()
                   and "Loon is up" in (r.project / "logs" / "latest" / "out.log").read_text(),
                   timeout=180)
        wait_until(r.complete, timeout=60)
        out = (r.session() / "out.log").read_text()
        assert "engine: ssh://root@127.0.0.1 (DOCKER_HOST, remote)" in out
        # The helper container made the volume directories on the engine's machine.
        assert "on the engine's machine" in out and "created" in out, out
        assert engine.docker("ps", "-q", "--filter", f"name={r.name}").stdout.strip()
        shared = subprocess.run(["docker", "-H", "unix:///var/run/docker.sock", "ps", "-aq",
                                 "--filter", f"name={r.name}"], capture_output=True, text=True)
        assert shared.stdout.strip() == "", "the ssh session reached the shared engine"
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, output
    assert r.complete()
    assert engine.docker("ps", "-aq").stdout.strip() == ""


def test_volume_path_that_is_a_file_on_the_engine_is_one_problem(
        ssh_to_private: tuple[SshServer, TlsEngine], tmp_path: Path) -> None:
    """Checked on the engine's machine (here the same disk): a file where a volume directory
    should be is a configuration error naming it, and nothing is left on the engine."""
    sshd, engine = ssh_to_private
    r = Remote(tmp_path, sshd.env())
    r.data.mkdir()
    (r.data / "mysql-data").write_text("not a directory\n")
    result = r.run()
    assert result.returncode == 2, result.stdout + result.stderr
    text = result.stdout + result.stderr
    assert "Traceback" not in text
    assert "mysql-data on the engine's machine" in text and "not a directory" in text, text
    assert engine.docker("ps", "-aq").stdout.strip() == ""
