"""The README's first command on a Debian 12 that already has Docker but no python3-venv:
``scripts/ensure-docker.sh`` must install what build.py's venv bootstrap needs even though
an engine answers (it used to return at once, and the bootstrap failed on ensurepip).

The machine state is a throw-away ``debian:bookworm-slim`` container (host network, it
apt-gets from Debian's mirrors) with python3 but not python3-venv, the host's docker client
and the host engine's socket mounted in, so ``docker info`` answers there. Then build.py's
own bootstrap step (``_fresh_venv``) must make a venv with pip."""

from __future__ import annotations

import shutil
import subprocess
import uuid

import pytest

from tests.conftest import ROOT

pytestmark = [pytest.mark.usefixtures("engine"), pytest.mark.engine]

SCRIPT = r"""
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends python3 >/dev/null
if python3 -c 'import venv, ensurepip' 2>/dev/null; then echo "STATE: venv already works"; exit 3; fi
docker info >/dev/null && echo "STATE: engine answers, no python3-venv"
bash /src/scripts/ensure-docker.sh
mkdir -p /tmp/clone && cp /src/build.py /tmp/clone/ && cd /tmp/clone
python3 -c 'import build; build._fresh_venv()'
.build-files/.venv/bin/python -m pip --version
echo "BOOTSTRAP OK"
"""


def test_ensure_docker_installs_python3_venv_when_an_engine_already_answers() -> None:
    docker_cli = shutil.which("docker")
    assert docker_cli is not None
    name = f"loon-test-ensure-{uuid.uuid4().hex[:8]}"
    try:
        r = subprocess.run(
            ["docker", "run", "--rm", "--name", name, "--network", "host",
             "-v", "/var/run/docker.sock:/var/run/docker.sock",
             "-v", f"{docker_cli}:/usr/bin/docker:ro",
             "-v", f"{ROOT / 'scripts'}:/src/scripts:ro",
             "-v", f"{ROOT / 'build.py'}:/src/build.py:ro",
             "debian:bookworm-slim", "bash", "-c", SCRIPT],
            capture_output=True, text=True, timeout=600)
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    out = r.stdout + r.stderr
    assert "STATE: engine answers, no python3-venv" in out, out
    assert "installing python3-venv from Debian" in out, out
    assert r.returncode == 0 and "BOOTSTRAP OK" in out, out
    assert "pip " in r.stdout
