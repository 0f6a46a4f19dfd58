"""The real Loon image (docker/: MariaDB, Redis, nginx, DuckDB, and the server and Celery from
the stand-in Django project) deployed as an operator deploys it, ``build.py -d``; then the
figures the synthetic cases give, so they describe what operators run.

steady    once ``loon status`` says every service runs: the background logger's CPU (% of a
          core), RSS (max, end) and peak RSS, the engine's and the container's CPU over
          WINDOW s, and the bytes the services logged meanwhile.
teardown  ``build.py -D``: its wall time, and the logger's peak RSS up to its exit (VmHWM,
          sampled every 50 ms until the process is gone) while the final collection runs.

The image binds fixed host ports (3306, 6379, 3000, 18080): one at a time per machine. The
part holds an exclusive ``flock`` on LOON_PORTS_LOCK (default /work/loon-ports.lock when
that file exists) for its whole run, and removes its container afterwards.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from bench.common import proc_rss_mb, say, state_of
from bench.steady import watch_logger

DEFAULT_LOCK = Path("/work/loon-ports.lock")


@contextlib.contextmanager
def ports_lock() -> Iterator[None]:
    path = os.environ.get("LOON_PORTS_LOCK") or (str(DEFAULT_LOCK) if DEFAULT_LOCK.exists()
                                                  else "")
    if not path:
        yield
        return
    with open(path, "a") as fh:
        say(f"real image: waiting for the ports lock {path}")
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _session_bytes(session: Path) -> int:
    return sum(p.stat().st_size for p in session.glob("*.log") if p.name != "out.log")


def _peak_until_exit(pid: int, out: dict) -> None:
    """The largest VmHWM seen until the process is gone (a zombie shows none: skipped)."""
    while True:
        try:
            hwm = proc_rss_mb(pid)[1]
        except OSError:
            return
        if hwm > 0:
            out["hwm"] = max(out.get("hwm", 0.0), hwm)
        elif out:
            return
        time.sleep(0.05)


def bench(work: Path, window: float) -> dict:
    from tests.loon_images.support import deploy, wait_ports_free

    with ports_lock():
        wait_ports_free()
        (work / "real").mkdir(parents=True, exist_ok=True)
        loon = deploy(work / "real", "production", https=False)
        try:
            say("real image: building and starting docker/ (production) with build.py -d")
            loon.up()
            d = loon.deployment
            session = Path(state_of(d)["session"])
            b0 = _session_bytes(session)
            steady = watch_logger(d, window, with_latency=False)
            steady["logged_kb_s"] = (_session_bytes(session) - b0) / 1024 / steady["window"]
            say(f"  real steady: logger cpu {steady['cpu_pct']:.2f} % rss "
                f"{steady['rss_max']:.1f} MiB, engine {steady['engine_cpu_pct']:.1f} %, "
                f"container {steady['container_cpu_pct']:.1f} %, services logged "
                f"{steady['logged_kb_s']:.1f} KiB/s")
            pid = int(state_of(d)["logger_pid"])
            peak: dict = {}
            sampler = threading.Thread(target=_peak_until_exit, args=(pid, peak), daemon=True)
            sampler.start()
            t0 = time.perf_counter()
            res = loon.down()
            took = time.perf_counter() - t0
            sampler.join(timeout=60)
            if res.returncode != 0:
                raise RuntimeError(f"build.py -D exited {res.returncode}: {res.stdout}"
                                   f"{res.stderr}")
            teardown = {"seconds": took, "peak_rss_mb": peak.get("hwm", float("nan")),
                        "host_mb": _session_bytes(session) / 2**20,
                        "services": sorted(p.stem for p in session.glob("*.log")
                                           if p.stem not in ("out", "container"))}
            say(f"  real teardown: build.py -D {took:.1f} s, logger peak RSS "
                f"{teardown['peak_rss_mb']:.1f} MiB")
            return {"steady": steady, "teardown": teardown,
                    "build_seconds": loon.build_seconds}
        finally:
            t = threading.Thread(target=loon.cleanup, daemon=True)  # bounded, like common.cleanup
            t.start()
            t.join(120)
            if t.is_alive():
                subprocess.run(["docker", "rm", "-f", loon.name], capture_output=True, timeout=60)
