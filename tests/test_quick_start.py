"""The README's first command, as written, on a Debian 12 that has Docker but not
``python3-venv`` (issue 31): ``ensure-docker.sh`` must install it although an engine answers,
then ``build.py`` makes its venv (pip from PyPI) and brings Loon up with the example config.

The machine state is a throw-away ``debian:bookworm-slim`` container (host network: Debian's
mirror and PyPI are reachable) holding only what a stock Debian 12 with Docker has: python3
without python3-venv, the docker client and the engine's socket (the host's, mounted in).
The engine binds the paths the command names, which are host paths: the project directory
and the example config's data directory (``/var/lib/loon-data``) are mounted at the same
paths inside. The machine's CA bundle is copied in where Debian keeps it and as a local CA
(so ca-certificates, if a package pulls it in, rebuilds the bundle with it): pip and the
image build trust it, and pip's cache is kept between runs on
the host so a run does not download every wheel again.

The command runs in the foreground as an operator's does; once Loon is up, Ctrl+C (SIGINT
to its process group) stops it, as the README says, and ``build.py -D`` then finds nothing
left. Uses Loon's fixed host ports: run it under the stand-in port lock.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = [pytest.mark.usefixtures("engine"), pytest.mark.engine]

PIP_CACHE = Path("/var/cache/loon-tests/quick-start-pip")
DATA = Path("/var/lib/loon-data")  # config.example.json's volumes
CA = Path("/etc/ssl/certs/ca-certificates.crt")
LOCAL_CA = Path("/usr/local/share/ca-certificates/this-machine.crt")
UP_TIMEOUT = 1500  # apt, pip and the image build on a loaded machine


def readme_command() -> str:
    match = re.search(r"```sh\n(.+?)\n```", (ROOT / "README.md").read_text(), re.S)
    assert match, "README.md has no ```sh block"
    return match.group(1).strip()


def _copy_project(dest: Path) -> None:
    """The checkout as a clone has it (no venvs, build files, logs or caches)."""
    skip = shutil.ignore_patterns(".git", ".venv", ".build-files", "logs", "__pycache__",
                                  "*.egg-info", ".mypy_cache", ".ruff_cache",
                                  ".pytest_cache", "config.json")
    shutil.copytree(ROOT, dest, ignore=skip, symlinks=True)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


@pytest.fixture
def machine(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A running Debian 12 container with python3, docker and no python3-venv."""
    project = tmp_path / "loon-supervisor"
    _copy_project(project)
    docker_cli = shutil.which("docker")
    assert docker_cli is not None
    PIP_CACHE.mkdir(parents=True, exist_ok=True)
    DATA.mkdir(parents=True, exist_ok=True)
    name = f"loon-test-quickstart-{uuid.uuid4().hex[:8]}"
    run = subprocess.run(
        ["docker", "run", "-d", "--name", name, "--network", "host",
         "-v", "/var/run/docker.sock:/var/run/docker.sock",
         "-v", f"{docker_cli}:/usr/bin/docker:ro",
         "-v", f"{PIP_CACHE}:/root/.cache/pip",
         "-v", f"{DATA}:{DATA}",
         "-v", f"{project}:{project}",
         "-e", f"PIP_CERT={CA}",
         "debian:bookworm-slim", "sleep", "infinity"],
        capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    try:
        # The machine's CA bundle, as its admin installed it: in the bundle Debian's
        # ca-certificates keeps, and as a local CA it rebuilds that bundle with.
        subprocess.run(["docker", "exec", name, "mkdir", "-p", str(CA.parent),
                        str(LOCAL_CA.parent)], check=True, timeout=60)
        for where in (CA, LOCAL_CA):
            cp = subprocess.run(["docker", "cp", "-L", str(CA), f"{name}:{where}"],
                                capture_output=True, text=True, timeout=60)
            assert cp.returncode == 0, cp.stderr
        yield name, project
    finally:
        subprocess.run(["docker", "exec", name, "bash", "-c",
                        f"cd {project} && [ -x .build-files/.venv/bin/python ] && "
                        "python3 build.py -D"], capture_output=True, timeout=300)
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=120)
        subprocess.run(["docker", "rm", "-f", "-v", "loon"], capture_output=True, timeout=120)


def _exec(name: str, script: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", "exec", name, "bash", "-c", script],
                          capture_output=True, text=True, timeout=timeout)


def test_readme_first_command_on_debian_with_docker_but_no_python3_venv(
        machine: tuple[str, Path]) -> None:
    name, project = machine
    prep = _exec(name, "set -eu; export DEBIAN_FRONTEND=noninteractive; "
                 "apt-get update -q >/dev/null; "
                 "apt-get install -y -q --no-install-recommends python3 >/dev/null; "
                 "docker info >/dev/null && echo ENGINE ANSWERS; "
                 "python3 -c 'import venv, ensurepip' 2>&1 || echo NO VENV")
    assert prep.returncode == 0, prep.stdout + prep.stderr
    assert "ENGINE ANSWERS" in prep.stdout and "NO VENV" in prep.stdout, prep.stdout

    out, status, pgid = project / "quickstart.out", project / "quickstart.rc", project / "pgid"
    # The command in its own process group (job control), as a terminal runs it, so that
    # the Ctrl+C below reaches every process of it and nothing else.
    wrapper = (f"cd {project}; set -m; bash -c {_quote(readme_command())} >{out} 2>&1 & "
               f"echo $! >{pgid}; wait $!; echo $? >{status}")
    started = subprocess.Popen(["docker", "exec", "-d", name, "bash", "-c", wrapper])
    assert started.wait(timeout=60) == 0
    session_out = project / "logs" / "latest" / "out.log"
    deadline = time.monotonic() + UP_TIMEOUT
    while "Loon is up" not in _read(session_out) and time.monotonic() < deadline:
        assert not status.exists(), _read(out)[-4000:]
        time.sleep(2)
    said = _read(out)
    assert "Loon is up" in _read(session_out), said[-4000:]
    assert "installing python3-venv from Debian" in said, said[-4000:]
    assert (project / ".build-files" / ".venv" / "bin" / "loon").exists()
    ps = subprocess.run(["docker", "inspect", "-f", "{{.State.Running}}", "loon"],
                        capture_output=True, text=True, timeout=60)
    assert ps.stdout.strip() == "true", ps.stderr

    # Ctrl+C, as the README says, then `down` finds nothing left to stop.
    kill = _exec(name, f"kill -INT -- -$(cat {pgid})", timeout=60)
    assert kill.returncode == 0, kill.stderr
    deadline = time.monotonic() + 300
    while not status.exists() and time.monotonic() < deadline:
        time.sleep(1)
    said = _read(out)
    assert _read(status).strip() == "130", said[-4000:]
    log = _read(session_out)
    for line in ("stopping the container", "removed container loon"):
        assert line in log, f"{line!r} missing from out.log:\n{log[-3000:]}"
    down = _exec(name, f"cd {project} && python3 build.py -D", timeout=300)
    assert down.returncode == 0, down.stdout + down.stderr
    left = subprocess.run(["docker", "ps", "-aq", "--filter", "name=^/loon$"],
                          capture_output=True, text=True, timeout=60)
    assert left.stdout.strip() == ""


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"
