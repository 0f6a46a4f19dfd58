"""The real Loon image (docker/: MariaDB, Redis, nginx, DuckDB, and the server and Celery from
the stand-in Django project) deployed as an operator deploys it, ``build.py -d``; then the
figures the synthetic cases give, so they describe what operators run. Twice: as shipped
(logSource auto, the fast path on a local engine), then with logSource exec (what a remote
engine gets, and the source issue 17's steady-state CPU target is set for).

steady    once ``loon status`` says every service runs: the background logger's CPU (% of a
          core), RSS (max, end) and peak RSS, the engine's and the container's CPU over
          WINDOW s, and the bytes the services logged meanwhile.
loaded    then LOAD_RATE requests/s to nginx (``GET /bench-load/<n>``, one keep-alive
          connection on 127.0.0.1): nginx writes an access-log line per request, which
          supervisord appends to nginx.log. In LOAD_WINDOWS windows of CONTROL s, the docker
          CLI follows every service's file beside our logger (``docker exec C tail -n 0 -F
          -s 0.05 <file>``, one per service): both CPUs over the same window, and for each
          request the time from its response to its line being readable in our host file
          (p50/p99; the response and the log line are nginx's, within a fraction of a ms).
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
from typing import Any

from bench.common import (
    EXEC,
    CpuMeter,
    Inotify,
    cid_of,
    median,
    peak_until_exit,
    percentile,
    proc_cpu,
    say,
    state_of,
    use_source,
)
from bench.steady import CONTROL, WARMUP, watch_logger

LOAD_RATE = 200  # requests per second to nginx
LOAD_WINDOWS = 3

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


class HttpLoad(threading.Thread):
    """GET /bench-load/<n> at ``rate`` per second; ``answered[n]`` = when its response came."""

    def __init__(self, port: int, rate: int) -> None:
        super().__init__(daemon=True)
        self.port, self.rate = port, rate
        self.stop_event = threading.Event()
        self.answered: dict[int, float] = {}
        self.errors = 0

    def run(self) -> None:
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        n, start = 0, time.monotonic()
        while not self.stop_event.is_set():
            n += 1
            try:
                conn.request("GET", f"/bench-load/{n}")
                conn.getresponse().read()
                self.answered[n] = time.time()
            except (OSError, http.client.HTTPException):
                self.errors += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            delay = start + n / self.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        conn.close()


class NginxLines(threading.Thread):
    """When each /bench-load/<n> line became readable in the host file (inotify)."""

    def __init__(self, session: Path) -> None:
        super().__init__(daemon=True)
        self.path = session / "nginx.log"
        self.notify = Inotify(session)
        self.stop_event = threading.Event()
        self.arrived: dict[int, float] = {}

    def run(self) -> None:
        with open(self.path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            partial = b""
            while not self.stop_event.is_set():
                if "nginx.log" not in self.notify.wait(0.2):
                    continue
                data = fh.read()
                now = time.time()
                data, partial = partial + data, b""
                cut = data.rfind(b"\n") + 1
                data, partial = data[:cut], data[cut:]
                for line in data.splitlines():
                    i = line.find(b"/bench-load/")
                    if i >= 0:
                        num = line[i + 12:].split(None, 1)[0]
                        if num.isdigit():
                            self.arrived.setdefault(int(num), now)
        self.notify.close()


def loaded(d: Any, session: Path, services: list[str], windows: int, seconds: float,
           port: int) -> dict:
    """Our logger and the docker CLI followers side by side on the real services under an
    HTTP load: CPU of both over the same windows, request-to-file latency of ours."""
    cid = cid_of(d.name)
    pid = int(state_of(d)["logger_pid"])
    load, lines = HttpLoad(port, LOAD_RATE), NginxLines(session)
    rows = []
    lines.start()
    time.sleep(0.5)  # the watcher is at the file's end before the first request
    load.start()
    try:
        # One window without the CLI: the engine's and the container's CPU under the same
        # load with only our logger following, so the CLI windows show what its followers
        # add there (exec sessions in dockerd/containerd/the shim, a tail per service).
        time.sleep(WARMUP)
        meter, t0 = CpuMeter.start(cid), time.perf_counter()
        ours0 = proc_cpu(pid)
        time.sleep(seconds)
        took = time.perf_counter() - t0
        e, c = meter.stop()
        alone = {"ours": 100 * (proc_cpu(pid) - ours0) / took, "engine": 100 * e / took,
                 "container": 100 * c / took}
        for _ in range(windows):
            procs = [subprocess.Popen(["docker", "exec", cid, "tail", "-n", "0", "-F", "-s",
                                       "0.05", f"/var/log/loon/{s}.log"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                     for s in services]
            try:
                time.sleep(WARMUP)
                ours0, t0 = proc_cpu(pid), time.perf_counter()
                cli0 = sum(proc_cpu(p.pid) for p in procs)
                meter = CpuMeter.start(cid)
                time.sleep(seconds)
                took = time.perf_counter() - t0
                e, c = meter.stop()
                row = {"ours": 100 * (proc_cpu(pid) - ours0) / took,
                       "cli": 100 * (sum(proc_cpu(p.pid) for p in procs) - cli0) / took,
                       "engine": 100 * e / took, "container": 100 * c / took}
            finally:
                for p in procs:
                    p.kill()
                    p.wait()
                subprocess.run(["docker", "exec", cid, "sh", "-c",
                                "for p in /proc/[0-9]*; do case \"$(tr '\\0' ' ' < $p/cmdline)\" "
                                "in 'tail -n 0 -F -s 0.05 '*) kill ${p#/proc/};; esac; done "
                                "2>/dev/null"], capture_output=True)
            row["ratio"] = row["ours"] / row["cli"] if row["cli"] else float("nan")
            rows.append(row)
            say(f"  real loaded window: ours {row['ours']:.2f} % vs CLI {row['cli']:.2f} % "
                f"({row['ratio']:.2f}x)")
    finally:
        load.stop_event.set()
        load.join(10)
        time.sleep(1.0)  # the last lines still arrive
        lines.stop_event.set()
        lines.join(10)
    lat = sorted(lines.arrived[n] - t for n, t in load.answered.items() if n in lines.arrived)
    requests = len(load.answered)
    cli_engine = median([r["engine"] for r in rows]) - alone["engine"]
    cli_container = median([r["container"] for r in rows]) - alone["container"]
    return {"rate": LOAD_RATE, "windows": rows, "seconds": seconds, "alone": alone,
            "cli_engine_pct": cli_engine, "cli_container_pct": cli_container,
            "ours_pct": median([r["ours"] for r in rows]),
            "cli_pct": median([r["cli"] for r in rows]),
            "ratio": median([r["ratio"] for r in rows]),
            "requests": requests, "errors": load.errors,
            "missing": requests - len(lat),
            "p50_ms": 1000 * percentile(lat, 50) if lat else float("nan"),
            "p99_ms": 1000 * percentile(lat, 99) if lat else float("nan"),
            "max_ms": 1000 * lat[-1] if lat else float("nan")}


def one(work: Path, window: float, source: str | None) -> dict:
    """One deployment of the real image: idle window, loaded windows, teardown.
    ``source``: logSource to set, None for the configuration as shipped (auto)."""
    from tests.loon_images.support import HTTP_PORT, deploy, wait_ports_free

    wait_ports_free()
    base = work / f"real-{source or 'default'}"
    base.mkdir(parents=True, exist_ok=True)
    loon = deploy(base, "production", https=False)
    if source is not None:
        use_source(loon.deployment, source)
    try:
        say(f"real image ({source or 'as shipped'}): building and starting docker/ "
            "(production) with build.py -d")
        loon.up()
        d = loon.deployment
        session = Path(state_of(d)["session"])
        kind = state_of(d).get("log_source", "?")
        b0 = _session_bytes(session)
        steady = watch_logger(d, window, with_latency=False)
        steady["logged_kb_s"] = (_session_bytes(session) - b0) / 1024 / steady["window"]
        say(f"  real steady ({kind}): logger cpu {steady['cpu_pct']:.2f} % rss "
            f"{steady['rss_max']:.1f} MiB, engine {steady['engine_cpu_pct']:.1f} %, "
            f"container {steady['container_cpu_pct']:.1f} %, services logged "
            f"{steady['logged_kb_s']:.1f} KiB/s")
        services = sorted(p.stem for p in session.glob("*.log")
                          if p.stem not in ("out", "container"))
        say(f"real image ({kind}): {LOAD_RATE} requests/s to nginx, {LOAD_WINDOWS} windows "
            f"of {CONTROL:.0f} s beside {len(services)} docker CLI followers")
        under_load = loaded(d, session, services, LOAD_WINDOWS, CONTROL, HTTP_PORT)
        say(f"  real loaded ({kind}): ours {under_load['ours_pct']:.2f} % vs CLI "
            f"{under_load['cli_pct']:.2f} % ({under_load['ratio']:.2f}x); request to "
            f"file p50 {under_load['p50_ms']:.1f} p99 {under_load['p99_ms']:.1f} ms, "
            f"{under_load['missing']} of {under_load['requests']} lines missing")
        pid = int(state_of(d)["logger_pid"])
        peak: dict = {}
        sampler = threading.Thread(target=peak_until_exit, args=(pid, peak), daemon=True)
        sampler.start()
        t0 = time.perf_counter()
        res = loon.down()
        took = time.perf_counter() - t0
        sampler.join(timeout=60)
        if res.returncode != 0:
            raise RuntimeError(f"build.py -D exited {res.returncode}: {res.stdout}"
                               f"{res.stderr}")
        teardown = {"seconds": took, "peak_rss_mb": peak.get("hwm", float("nan")),
                    "host_mb": _session_bytes(session) / 2**20, "services": services}
        say(f"  real teardown ({kind}): build.py -D {took:.1f} s, logger peak RSS "
            f"{teardown['peak_rss_mb']:.1f} MiB")
        return {"steady": steady, "loaded": under_load, "teardown": teardown,
                "build_seconds": loon.build_seconds, "log_source": kind}
    finally:
        t = threading.Thread(target=loon.cleanup, daemon=True)  # bounded, like common.cleanup
        t.start()
        t.join(120)
        if t.is_alive():
            subprocess.run(["docker", "rm", "-f", loon.name], capture_output=True, timeout=60)


def bench(work: Path, window: float) -> dict:
    """The image as shipped (auto: the fast path on a local engine), then on exec streams
    (what a remote engine gets; the source the steady-state target is set for)."""
    with ports_lock():
        out = one(work, window, None)
        out["exec"] = one(work, min(window, 30.0), EXEC)
        return out
