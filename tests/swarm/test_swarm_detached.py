"""Swarm `-d` on one node: Ctrl+C while the services converge removes them (exit 130, no
logger left), and `loon down` after the logger was killed collects every task's last bytes
itself before removing the services."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import ROOT, base_config
from tests.engine_helpers import wait_until
from tests.images import write_context
from tests.swarm.support import SwarmEngine
from tests.swarm.test_swarm import COUNT, paced, swarm_engine  # noqa: F401

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("engine")]


def _project(tmp_path: Path, engine: SwarmEngine, programs: dict[str, str]
             ) -> tuple[str, Path, dict[str, str]]:
    name = f"loon-swd-{uuid.uuid4().hex[:6]}"
    ctx = write_context(tmp_path / "image", programs)
    config = tmp_path / "config.json"
    config.write_text(json.dumps(base_config(
        tmp_path / "data", containerName=name, imageTag=f"loon-test:{name}",
        imageDirectory=str(ctx), networkMode="host", buildNetworkMode="host",
        minioSourceUrl=None, stopTimeout=3, orchestrator="swarm", celeryReplicas=2),
        indent=2))
    project = tmp_path / "project"
    project.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOON_", "DOCKER_"))}
    env.update(DOCKER_HOST=engine.host, LOON_PROJECT_ROOT=str(project))
    return name, config, env


def test_ctrl_c_while_a_detached_swarm_converges(swarm_engine: SwarmEngine,  # noqa: F811
                                                 tmp_path: Path) -> None:
    # a core that never gets to run (its image's program exits at once, again and again)
    # keeps `up -d` converging until the signal
    name, config, env = _project(tmp_path, swarm_engine, {"core": "exit 3",
                                                          "celery": "exec sleep 100000"})
    project = Path(env["LOON_PROJECT_ROOT"])
    proc = subprocess.Popen([sys.executable, str(ROOT / "build.py"), "-d", "--config-file",
                             str(config)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    out_log = project / "logs" / "latest" / "out.log"
    try:
        wait_until(lambda: out_log.exists() and "converging:" in out_log.read_text(),
                   timeout=240)
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, output
    assert "Traceback" not in output, output
    assert swarm_engine.docker("service", "ls", "-q").stdout.strip() == ""
    wait_until(lambda: not swarm_engine.docker(
        "ps", "-aq", "--filter", f"label=org.loon.deployment={name}").stdout.split(),
        timeout=60)
    assert not (project / ".build-files" / f"state.{name}.json").exists()
    left = subprocess.run(["pgrep", "-f", f"_logger {name}"], capture_output=True, text=True)
    assert left.stdout.strip() == ""


def test_down_without_a_logger_collects_every_task(swarm_engine: SwarmEngine,  # noqa: F811
                                                   tmp_path: Path) -> None:
    name, config, env = _project(tmp_path, swarm_engine,
                                 {"core": paced("core"), "celery": paced("celery")})
    project = Path(env["LOON_PROJECT_ROOT"])
    up = subprocess.run([sys.executable, str(ROOT / "build.py"), "-d", "--config-file",
                         str(config)], cwd=tmp_path, env=env, capture_output=True, text=True,
                        timeout=300)
    assert up.returncode == 0, up.stdout + up.stderr
    session = (project / "logs" / "latest").resolve()
    pid = int((project / ".build-files" / f"state.{name}.lock").read_text().strip())
    os.kill(pid, signal.SIGKILL)  # mid-way through the tasks' 400 lines
    wait_until(lambda: not Path(f"/proc/{pid}").exists(), timeout=10)
    time.sleep(6)  # the tasks finish their lines with nobody following
    down = subprocess.run([sys.executable, "-m", "loon_supervisor", "down", "--config-file",
                           str(config)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    said = down.stdout + down.stderr
    assert down.returncode == 0 and "Traceback" not in said, said
    assert "collecting each task's last bytes" in said, said
    assert swarm_engine.docker("service", "ls", "-q").stdout.strip() == ""
    # every task's file has all its lines exactly once, in order
    files = sorted(session.glob("c*.*.log"))
    assert len(files) == 3, [p.name for p in files]
    for f in files:
        lines = f.read_text().splitlines()
        numbers = [int(line.split()[2]) for line in lines]
        assert numbers == list(range(1, COUNT + 1)), (f.name, numbers[:5], len(lines))
    assert not (project / ".build-files" / f"state.{name}.json").exists()


def test_services_removed_behind_loons_back_end_the_logger(
        swarm_engine: SwarmEngine, tmp_path: Path) -> None:  # noqa: F811
    """`docker service rm` instead of `loon down`: the background logger says so, completes
    what it can and exits, and forgets the deployment; nothing is left running."""
    name, config, env = _project(tmp_path, swarm_engine, {"core": "exec sleep 100000",
                                                          "celery": "exec sleep 100000"})
    project = Path(env["LOON_PROJECT_ROOT"])
    up = subprocess.run([sys.executable, str(ROOT / "build.py"), "-d", "--config-file",
                         str(config)], cwd=tmp_path, env=env, capture_output=True, text=True,
                        timeout=300)
    assert up.returncode == 0, up.stdout + up.stderr
    out_log = (project / "logs" / "latest").resolve() / "out.log"
    pid = int((project / ".build-files" / f"state.{name}.lock").read_text().strip())
    swarm_engine.docker("service", "rm", f"{name}-core", f"{name}-celery")
    wait_until(lambda: not Path(f"/proc/{pid}").exists(), timeout=60,
               message=lambda: out_log.read_text()[-2000:])
    assert "removed without `loon down`" in out_log.read_text()
    assert "Traceback" not in out_log.read_text()
    assert not (project / ".build-files" / f"state.{name}.json").exists()
