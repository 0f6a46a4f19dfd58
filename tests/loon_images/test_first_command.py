"""README command 1, exactly as written, typed into a real terminal on a machine where that
command itself starts the Docker engine; then Ctrl+C.

The engine is private (its own socket, data root, exec root and containerd namespaces,
through ``LOON_DOCKERD_ROOT`` + ``DOCKER_HOST``), so `scripts/ensure-docker.sh` really starts
one, as on a fresh machine, without touching the shared engine. The base image is copied
into its data root first (no registry here). The command runs in a pseudo-terminal
(pexpect), from a fresh `git clone`: the Ctrl+C reaches the terminal's foreground process
group, as an operator's does. It must stop Loon gracefully and leave the engine running.

This builds the real Loon image on an empty engine (minutes) and uses Loon's fixed host
ports: run it alone (the test takes /tmp/loon-ports.lock itself).
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from tests.conftest import ROOT
from tests.loon_images.support import BUILD_TIMEOUT, HEALTHY_TIMEOUT, ensure_base_image

PORTS_LOCK = Path("/tmp/loon-ports.lock")
BASE_IMAGE = "debian:bookworm-slim"
pytestmark = pytest.mark.engine

SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def readme_command() -> str:
    """The first ```sh block of the README: the command a new operator types."""
    match = re.search(r"```sh\n(.+?)\n```", (ROOT / "README.md").read_text(), re.S)
    assert match, "README.md has no ```sh block"
    return match.group(1).strip()


class Engine:
    """The private engine's handles: the same variables the operator's shell would carry."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.env = {"DOCKER_HOST": f"unix://{base}/docker.sock", "LOON_DOCKERD_ROOT": str(base)}

    def docker(self, *args: str, **kw: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["docker", *args], env={**os.environ, **self.env},
                              capture_output=True, text=True, **kw)  # type: ignore[call-overload]

    def pid(self) -> int | None:
        try:
            pid = int((self.base / "docker.pid").read_text())
        except (OSError, ValueError):
            return None
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            return None
        return pid if comm == "dockerd" else None

    def start(self) -> None:
        result = subprocess.run(["bash", str(ROOT / "scripts" / "ensure-docker.sh")],
                                env={**os.environ, **self.env}, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr

    def stop(self) -> None:
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 60
        while self.pid() == pid and time.monotonic() < deadline:
            time.sleep(0.2)


def unmount_under(base: Path) -> None:
    """What a stopped dockerd leaves mounted (its netns), deepest first, so rmtree works."""
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for point in sorted((m for m in mounts if m.startswith(f"{base}/")), reverse=True):
        subprocess.run(["umount", point], capture_output=True)


@pytest.fixture
def ports_lock() -> Iterator[None]:
    with open(PORTS_LOCK, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@pytest.fixture
def stopped_engine(engine: None, ports_lock: None) -> Iterator[Engine]:
    """A private engine that holds the base image, then stopped: the command starts it."""
    ensure_base_image(BASE_IMAGE)
    base = Path(f"/tmp/lfc-{uuid.uuid4().hex[:6]}")  # short: socket paths are limited
    eng = Engine(base)
    try:
        eng.start()
        save = subprocess.Popen(["docker", "save", BASE_IMAGE], stdout=subprocess.PIPE)
        load = eng.docker("load", "-q", stdin=save.stdout, timeout=600)
        save.wait()
        assert load.returncode == 0, load.stderr
        eng.stop()
        assert eng.pid() is None, "the private engine did not stop before the test"
        yield eng
    finally:
        if eng.pid() is not None:
            eng.docker("rm", "-f", "-v", "loon")
        eng.stop()
        unmount_under(base)
        shutil.rmtree(base, ignore_errors=True)


def test_readme_command_in_a_terminal_survives_ctrl_c(stopped_engine: Engine,
                                                        tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LOON_", "VIRTUAL_ENV", "PYTHON"))}
    env.update(stopped_engine.env, PATH=SYSTEM_PATH, TERM="xterm-256color")
    transcript = tmp_path / "terminal.txt"
    with open(transcript, "w", encoding="utf-8", errors="replace") as log:
        child = pexpect.spawn("bash", ["-c", readme_command()], cwd=str(clone), env=env,
                              encoding="utf-8", codec_errors="replace", logfile=log,
                              timeout=BUILD_TIMEOUT, dimensions=(40, 160))
        try:
            child.expect("Loon is up")
            child.expect("press Ctrl\\+C to stop")
            # An operator waits for the database before stopping it (on a first start,
            # MariaDB initialises its data directory with a temporary server first).
            mysql_log = clone / "logs" / "latest" / "mysql.log"
            deadline = time.monotonic() + HEALTHY_TIMEOUT
            while "port: 3306" not in _read(mysql_log) and time.monotonic() < deadline:
                child.expect([pexpect.TIMEOUT, pexpect.EOF], timeout=0.5)  # keep reading
                assert child.isalive(), transcript.read_text(errors="replace")[-3000:]
            assert "port: 3306" in _read(mysql_log), _read(mysql_log)[-3000:]
            child.send("\x03")
            child.expect(pexpect.EOF, timeout=180)
        finally:
            child.close(force=True)
    said = transcript.read_text(errors="replace")
    assert child.exitstatus == 130, f"exit {child.exitstatus} {child.signalstatus}: {said[-3000:]}"
    assert "starting dockerd in its own session (log: " in said

    session = (clone / "logs" / "latest").resolve()
    out = (session / "out.log").read_text()
    for line in ("build progress: step 1/", "build progress: done in", "Loon is up",
                 "stopping, press Ctrl+C again to force", "stopping the container",
                 "removed container loon"):
        assert line in out, f"{line!r} missing from out.log:\n{out[-3000:]}"
    # The teardown did not wait out the drain grace (issue 23): the fast path's followers
    # ended at their files' ends once the services had stopped.
    assert "log source: host directory" in out, out[-3000:]
    assert "the log followers read their files to the end" in out, out[-3000:]
    assert "the log followers had not ended" not in out, out[-3000:]
    mysql = (session / "mysql.log").read_text(errors="replace")
    assert "Shutdown complete" in mysql, mysql[-3000:]

    assert stopped_engine.pid() is not None, "the Ctrl+C stopped the Docker engine"
    info = stopped_engine.docker("info", "--format", "{{.ServerVersion}}", timeout=30)
    assert info.returncode == 0, f"docker info no longer answers: {info.stderr}"
    left = stopped_engine.docker("ps", "-aq", timeout=30)
    assert left.stdout.strip() == "", f"containers left behind: {left.stdout}"
    dockerd_log = (stopped_engine.base / "dockerd.log").read_text(errors="replace")
    assert "Processing signal 'interrupt'" not in dockerd_log
