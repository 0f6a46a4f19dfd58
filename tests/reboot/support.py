"""An engine restart without live-restore (what a reboot does to the containers), shared by
the tests and ``bench/engine_restart.py``: a private dockerd, a small deployment with a
follower, the engine stopped (its containers stop with it) and started again."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.engine_helpers import Deployment, PrivateEngine, make_deployment, wait_until
from tests.faults.support import use_log_source
from tests.test_restart_keeps import counter, lines, numbered


@dataclass(frozen=True)
class Comeback:
    """Seconds from the engine's start command, in one run."""

    engine: float  # until the engine answers (the baseline: the engine's own start)
    running: float  # until Loon's container runs again
    logging: float  # until its first new line is in the session's host file


def private_engine() -> PrivateEngine:
    engine = PrivateEngine(Path(f"/tmp/ldk-{uuid.uuid4().hex[:6]}"), live_restore=False)
    engine.base.mkdir()
    return engine


def loon(d: Deployment, engine: PrivateEngine, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "loon_supervisor", *args, "--name", d.name],
                          cwd=d.root, env=d.env(DOCKER_HOST=engine.host), capture_output=True,
                          text=True, timeout=120)


def running(d: Deployment, engine: PrivateEngine) -> bool:
    out = subprocess.run(["docker", "-H", engine.host, "inspect", "-f", "{{.State.Running}}",
                          d.name], capture_output=True, text=True).stdout
    return out.strip() == "true"


def deploy_on(tmp_path: Path, engine: PrivateEngine, log_source: str) -> Deployment:
    d = make_deployment(tmp_path, {"c": counter("c"), "t": counter("t", "0.01")})
    use_log_source(d, log_source)
    return d


def restart_engine(d: Deployment, engine: PrivateEngine,
                   between: Callable[[], None] | None = None) -> Comeback:
    """Stop the engine (the container stops with it), run ``between``, start it again;
    how long each part of the way back took."""
    wait_until(lambda: len(lines(d, "c")) > 20, timeout=60)
    engine.stop()
    assert not (engine.proc and engine.proc.poll() is None)
    if between is not None:
        between()
    n = len(lines(d, "c"))
    started = time.monotonic()
    engine.start(interval=0.02)
    up = time.monotonic() - started
    wait_until(lambda: running(d, engine), timeout=120, interval=0.02)
    run = time.monotonic() - started
    wait_until(lambda: len(lines(d, "c")) > n, timeout=120, interval=0.02)
    return Comeback(up, run, time.monotonic() - started)


def check_continued(d: Deployment, engine: PrivateEngine) -> None:
    """The same session goes on: new lines arrive, every line once and in order, `loon
    status` says healthy, and `loon down` still means down."""
    n = len(lines(d, "c"))
    wait_until(lambda: len(lines(d, "c")) > n + 20, timeout=60)
    for name in ("c", "t"):
        numbered(d, name)
    status = loon(d, engine, "status")
    assert status.returncode == 0, status.stdout + status.stderr
    down = loon(d, engine, "down")
    assert down.returncode == 0, down.stdout + down.stderr
    left = subprocess.run(["docker", "-H", engine.host, "ps", "-aq", "--filter",
                           f"name=^/{d.name}$"], capture_output=True, text=True).stdout
    assert left.strip() == ""
    for name in ("c", "t"):
        numbered(d, name)


def kill_followers(d: Deployment) -> None:
    subprocess.run(["pkill", "-9", "-f", f"_logger {d.name}$"], check=False)
    subprocess.run(["pkill", "-9", "-f", "--", f"--name {d.name} --wait"], check=False)


def env_without_loon() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("LOON_")}
