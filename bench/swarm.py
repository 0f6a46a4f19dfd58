"""Swarm mode on a private single-node swarm on loopback: convergence time, per-task log
latency and per-task throughput (``.venv/bin/python -m bench.swarm``; about 2 minutes).

Latency (after a 3 s warm-up, since lines written before a new task's follower attaches
wait up to the task watcher's 1 s poll): each Celery task writes a line every 50 ms stamped with /proc/uptime (one kernel,
so one clock for the containers and this process, at 10 ms resolution); this process polls
the host files every 5 ms and subtracts. Throughput: each of 3 tasks writes 300,000 lines at
once; the time from `Loon is up` until all three host files are complete.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from tests.conftest import ROOT, base_config
from tests.images import write_context
from tests.swarm.support import SwarmEngine

LINES = 300_000
REPLICAS = 3


def uptime() -> float:
    return float(Path("/proc/uptime").read_text().split()[0])


def deploy(engine: SwarmEngine, tmp: Path, celery: str) -> tuple[subprocess.Popen[str], Path,
                                                                  float]:
    name = f"loon-bench-{uuid.uuid4().hex[:6]}"
    ctx = write_context(tmp / "image", {"core": "exec sleep 100000", "celery": celery})
    config = tmp / "config.json"
    config.write_text(json.dumps(base_config(
        tmp / "data", containerName=name, imageTag=f"loon-bench:{name}",
        imageDirectory=str(ctx), networkMode="host", buildNetworkMode="host",
        minioSourceUrl=None, stopTimeout=3, orchestrator="swarm",
        celeryReplicas=REPLICAS)))
    project = tmp / "project"
    project.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOON_", "DOCKER_"))}
    env.update(DOCKER_HOST=engine.host, LOON_PROJECT_ROOT=str(project))
    proc = subprocess.Popen([sys.executable, str(ROOT / "build.py"), "--config-file",
                             str(config)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT, text=True)
    out = project / "logs" / "latest" / "out.log"
    while not (out.exists() and "Loon is up (swarm)" in out.read_text()):
        if proc.poll() is not None:
            raise SystemExit(f"build.py exited {proc.returncode}")
        time.sleep(0.01)
    up_at = time.monotonic()
    text = out.read_text()
    converged = float(text.split("converged in ")[1].split("s")[0])
    print(f"converged in {converged:.1f} s ({REPLICAS} Celery replicas + core)")
    return proc, out.resolve().parent, up_at


def stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)


def latency(engine: SwarmEngine, tmp: Path, window: float = 20.0) -> list[float]:
    proc, session, _ = deploy(engine, tmp, "while :; do echo \"t $(cut -d' ' -f1 "
                              "/proc/uptime)\"; usleep 50000; done")
    seen: dict[Path, int] = {}
    samples: list[float] = []
    warm = time.monotonic() + 3  # lines written before a new task's follower attached
    end = warm + window
    while time.monotonic() < end:
        for f in session.glob("celery.*.log"):
            data = f.read_bytes()
            new = data[seen.get(f, 0):]
            cut = new.rfind(b"\n") + 1
            now = uptime()
            if time.monotonic() > warm:
                samples += [now - float(line.split()[1]) for line in new[:cut].splitlines()]
            seen[f] = seen.get(f, 0) + cut
        time.sleep(0.005)
    stop(proc)
    return samples


def throughput(engine: SwarmEngine, tmp: Path) -> float:
    proc, session, up_at = deploy(engine, tmp, f"seq 1 {LINES} | sed 's/^/celery line /'; "
                                  "exec sleep 100000")
    want = f"celery line {LINES}\n".encode()
    while True:
        files = list(session.glob("celery.*.log"))
        if len(files) == REPLICAS and all(f.read_bytes().endswith(want) for f in files):
            break
        time.sleep(0.01)
    took = time.monotonic() - up_at
    size = sum(f.stat().st_size for f in files)
    stop(proc)
    return size / took / REPLICAS


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        engine = SwarmEngine(Path(f"/tmp/lsb-{uuid.uuid4().hex[:6]}"))
        try:
            engine.start()
            lat = latency(engine, Path(tmp) / "lat")
            q = statistics.quantiles(lat, n=100)
            print(f"per-task log latency over {len(lat)} lines: p50 {q[49] * 1000:.0f} ms, "
                  f"p99 {q[98] * 1000:.0f} ms (10 ms clock resolution)")
            rate = throughput(engine, Path(tmp) / "tp")
            print(f"per-task throughput, {REPLICAS} tasks x {LINES:,} lines at once: "
                  f"{rate / 1e6:.1f} MB/s per task (upper bound of the time to complete)")
        finally:
            engine.destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main())
