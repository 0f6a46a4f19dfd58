"""Following swarm tasks: loon's per-task files against `docker service logs -f` on the same
tasks in the same run (``.venv/bin/python -m bench.swarm_service_logs``; about 2 minutes).

Each Celery task writes every line twice: to its service file (the image contract, which
loon follows) and to the container's stdout (``/proc/1/fd/1``, what `docker service logs`
carries). So both readers see the same lines from the same writes.

- Latency: each of 3 tasks writes a line every 50 ms stamped with /proc/uptime (one kernel,
  one clock, but only 10 ms resolution) and a unique tag. This process keeps loon's host
  files open and reads what they gained every 1 ms; a thread reads `docker service logs -f
  --raw` as its lines arrive. Both subtract the stamp (absolute latency, 10 ms steps), and
  for each line both saw, the difference of their arrival times on this host's monotonic
  clock is the head-to-head figure (loon minus service logs; negative: loon first).
- Throughput: each of 3 tasks writes 100,000 lines at once. Measured from `Loon is up` until
  all of them are in loon's files, and until `docker service logs -f` has printed all of them.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from tests.conftest import ROOT, base_config
from tests.images import write_context
from tests.swarm.support import SwarmEngine

LINES = 100_000
REPLICAS = 3
BOTH = "tee /proc/1/fd/1"  # the service file (stdout of the program) and the container's


def uptime() -> float:
    return float(Path("/proc/uptime").read_text().split()[0])


class ServiceLogs:
    """`docker service logs -f --raw` on the Celery service, read line by line in a thread."""

    def __init__(self, engine: SwarmEngine, service: str) -> None:
        self.proc = subprocess.Popen(["docker", "-H", engine.host, "service", "logs", "-f",
                                      "--raw", service], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL)
        self.lines = 0
        self.latencies: list[float] = []
        self.arrived: dict[bytes, float] = {}  # line -> time.monotonic() on arrival
        self.warm_at = 0.0
        self.done_at: float | None = None
        self.want = 0
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines += 1
            parts = line.split()
            if len(parts) == 3 and parts[0] == b"t" and time.monotonic() > self.warm_at:
                self.arrived[line.rstrip(b"\n")] = time.monotonic()
                self.latencies.append(uptime() - float(parts[1]))
            if self.want and self.lines >= self.want and self.done_at is None:
                self.done_at = time.monotonic()

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def deploy(engine: SwarmEngine, tmp: Path, celery: str
           ) -> tuple[subprocess.Popen[str], Path, float, str]:
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
    return proc, out.resolve().parent, time.monotonic(), f"{name}-celery"


def stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)


def latency(engine: SwarmEngine, tmp: Path, window: float = 20.0
            ) -> tuple[list[float], list[float], list[float]]:
    """(loon's absolute latencies, service logs', loon minus service logs per line)."""
    proc, session, _, service = deploy(
        engine, tmp, "tag=$(cut -c1-8 /proc/sys/kernel/random/uuid); n=0; while :; do "
        f"n=$((n+1)); echo \"t $(cut -d' ' -f1 /proc/uptime) $tag.$n\" | {BOTH}; "
        "usleep 50000; done")
    baseline = ServiceLogs(engine, service)
    files: dict[Path, object] = {}
    pending: dict[Path, bytes] = {}
    ours: list[float] = []
    arrived: dict[bytes, float] = {}
    warm = time.monotonic() + 3  # lines written before a new task's follower attached
    baseline.warm_at = warm
    end = warm + window
    next_glob = 0.0
    try:
        while time.monotonic() < end:
            if time.monotonic() >= next_glob:  # new tasks' files; cheap, but not every ms
                for f in session.glob("celery.*.log"):
                    if f not in files:
                        files[f] = f.open("rb")  # noqa: SIM115 - closed below
                next_glob = time.monotonic() + 0.2
            for f, handle in files.items():
                data = pending.get(f, b"") + handle.read()  # type: ignore[attr-defined]
                cut = data.rfind(b"\n") + 1
                pending[f] = data[cut:]
                if not cut:
                    continue
                now, stamp_now = time.monotonic(), uptime()
                if now > warm:
                    for line in data[:cut].splitlines():
                        ours.append(stamp_now - float(line.split()[1]))
                        arrived[line] = now
            time.sleep(0.001)
    finally:
        for handle in files.values():
            handle.close()  # type: ignore[attr-defined]
    time.sleep(1)  # the baseline's last lines of the window
    baseline.close()
    stop(proc)
    both = [arrived[k] - t for k, t in baseline.arrived.items() if k in arrived]
    return ours, baseline.latencies, both


def throughput(engine: SwarmEngine, tmp: Path) -> tuple[float, float | None]:
    proc, session, up_at, service = deploy(
        engine, tmp, f"seq 1 {LINES} | sed 's/^/celery line /' | {BOTH}; exec sleep 100000")
    baseline = ServiceLogs(engine, service)
    baseline.want = REPLICAS * LINES
    want = f"celery line {LINES}\n".encode()
    deadline = time.monotonic() + 300
    ours_at = None
    while time.monotonic() < deadline and (ours_at is None or baseline.done_at is None):
        files = list(session.glob("celery.*.log"))
        if ours_at is None and len(files) == REPLICAS and all(
                f.read_bytes().endswith(want) for f in files):
            ours_at = time.monotonic()
        time.sleep(0.01)
    size = sum(f.stat().st_size for f in session.glob("celery.*.log"))
    baseline.close()
    stop(proc)
    assert ours_at is not None, "loon's files never completed"
    ours = size / (ours_at - up_at) / REPLICAS
    theirs = None if baseline.done_at is None else size / (baseline.done_at - up_at) / REPLICAS
    return ours, theirs


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        engine = SwarmEngine(Path(f"/tmp/lsb-{uuid.uuid4().hex[:6]}"))
        try:
            engine.start()
            ours, theirs, both = latency(engine, Path(tmp) / "lat")
            for who, lat in (("loon's files", ours), ("docker service logs -f", theirs)):
                q = statistics.quantiles(lat, n=100)
                print(f"latency, {who}: {len(lat)} lines, p50 {q[49] * 1000:.0f} ms, "
                      f"p99 {q[98] * 1000:.0f} ms (10 ms clock steps)")
            q = statistics.quantiles(both, n=100)
            first = sum(d < 0 for d in both) / len(both)
            print(f"head to head, {len(both)} lines both saw: loon's arrival minus service "
                  f"logs' p50 {q[49] * 1000:+.1f} ms, p90 {q[89] * 1000:+.1f} ms, p99 "
                  f"{q[98] * 1000:+.1f} ms; loon first for {first:.0%} of lines")
            mine, base = throughput(engine, Path(tmp) / "tp")
            print(f"throughput per task, {REPLICAS} tasks x {LINES:,} lines at once: "
                  f"loon's files {mine / 1e6:.1f} MB/s, docker service logs -f "
                  + (f"{base / 1e6:.1f} MB/s (ratio {mine / base:.2f}x)" if base else
                     "did not deliver every line within 300 s"))
        finally:
            engine.destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main())
