"""Steady state of the background logger (``build.py -d``): latency and overhead.

quiet   8 services that write one line and then nothing; the logger is watched for WINDOW s.
active  8 services that each append a line every 10 ms (100 lines/s, 800 lines/s in all),
        each line carrying its write time (gettimeofday, microseconds). Over the same WINDOW
        the benchmark watches the session directory with inotify and, for every line that
        lands in a host file, takes arrival time - write time. Containers share the host's
        clock, so the two timestamps are comparable. Lines are also checked for gaps.

For both: the logger's CPU (% of one core, from /proc/<pid>/stat), its RSS (sampled every
second; max and end) and its peak RSS (VmHWM), and the CPU the engine (dockerd, containerd,
the container's shim) and the container's own processes (the followers' tails, the services)
used over the window. The images carry a status command, so the logger also runs the
status poll (one exec every 2 s) as it does for the real image.

paired  right after the active window, a CONTROL-second window in which the docker CLI
        baseline runs beside the logger on the same container: 8 ``docker exec C tail -c +1
        -F -s 0.05 sK.log > file`` (the same follower command, without our process in the
        path). Both sets of files are watched at once, so both see the same machine: when the
        machine stalls (other tenants), both p99s rise together, which tells a stall of the
        machine or engine from one of ours.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

from bench.common import (
    EXEC,
    SERVICES,
    CpuMeter,
    Inotify,
    check_source,
    cid_of,
    cleanup,
    loadavg,
    median,
    percentile,
    proc_cpu,
    proc_rss_mb,
    quiet_deployment,
    remove_image,
    say,
    state_of,
    writer_deployment,
)
from tests.engine_helpers import Deployment

WARMUP = 3.0
CONTROL = 10.0
PAIRED_RUNS = 5


class LatencyWatcher(threading.Thread):
    """Reads every new line of the 8 session files as soon as inotify reports a write."""

    def __init__(self, session: Path) -> None:
        super().__init__(daemon=True)
        self.session = session
        self.notify = Inotify(session)
        self.stop_event = threading.Event()
        self.window: tuple[float, float] = (float("inf"), float("inf"))
        self.latencies: list[float] = []  # seconds, lines written inside the window
        self.lines = 0
        self.gaps: list[str] = []
        self._offsets = {s: 0 for s in SERVICES}
        self._partial = {s: b"" for s in SERVICES}
        self._last = {s: 0 for s in SERVICES}

    def run(self) -> None:
        names = {f"{s}.log": s for s in SERVICES}
        files: dict[str, object] = {}
        while not self.stop_event.is_set():
            changed = self.notify.wait(0.2)
            for fname in changed:
                s = names.get(fname)
                if s is None:
                    continue
                if s not in files:
                    files[s] = open(self.session / fname, "rb")  # noqa: SIM115
                fh = files[s]
                data = fh.read()  # type: ignore[attr-defined]
                now = time.time()
                if data:
                    self._take(s, data, now)
        for fh in files.values():
            fh.close()  # type: ignore[attr-defined]
        self.notify.close()

    def _take(self, s: str, data: bytes, now: float) -> None:
        data = self._partial[s] + data
        cut = data.rfind(b"\n") + 1
        self._partial[s] = data[cut:]
        lo, hi = self.window
        for line in data[:cut].splitlines():
            parts = line.split()
            if len(parts) != 3 or parts[0].decode() != s:
                continue  # the "sK started"/"bye" lines
            i, t = int(parts[1]), int(parts[2]) / 1e6
            if i != self._last[s] + 1:
                self.gaps.append(f"{s}: {self._last[s]} -> {i}")
            self._last[s] = i
            if lo <= t < hi:
                self.latencies.append(now - t)
                self.lines += 1


def watch_logger(d: Deployment, window: float, with_latency: bool) -> dict:
    st = state_of(d)
    pid = int(st["logger_pid"])
    cid = cid_of(d.name)
    session = Path(st["session"])
    watcher = LatencyWatcher(session) if with_latency else None
    if watcher is not None:
        watcher.start()
    time.sleep(WARMUP)
    load0 = loadavg()
    meter = CpuMeter.start(cid)
    cpu0, t0 = proc_cpu(pid), time.perf_counter()
    if watcher is not None:
        watcher.window = (time.time(), time.time() + window)
    rss: list[float] = []
    while time.perf_counter() - t0 < window:
        rss.append(proc_rss_mb(pid)[0])
        time.sleep(1.0)
    cpu1, t1 = proc_cpu(pid), time.perf_counter()
    engine, inside = meter.stop()
    rss_end, hwm = proc_rss_mb(pid)
    out = {
        "window": t1 - t0, "cpu_pct": 100 * (cpu1 - cpu0) / (t1 - t0),
        "rss_max": max(rss + [rss_end]), "rss_end": rss_end, "hwm": hwm,
        "engine_cpu_pct": 100 * engine / (t1 - t0),
        "container_cpu_pct": 100 * inside / (t1 - t0),
        "load": (load0 + loadavg()) / 2,
    }
    if watcher is not None:
        time.sleep(1.0)  # lines written at the window's end still arrive
        watcher.stop_event.set()
        watcher.join()
        out.update(_lat(watcher))
    return out


def _lat(w: LatencyWatcher) -> dict:
    lat = sorted(w.latencies)
    return {"lines": w.lines, "gap_count": len(w.gaps), "gaps": w.gaps[:5],
            "p50_ms": 1000 * percentile(lat, 50), "p99_ms": 1000 * percentile(lat, 99),
            "max_ms": 1000 * (lat[-1] if lat else float("nan"))}


def paired(d: Deployment, work: Path, seconds: float) -> dict:
    """The logger and the docker CLI follower side by side, over the same seconds."""
    cid = cid_of(d.name)
    ctl = work / f"cli-control-{time.monotonic_ns()}"
    ctl.mkdir()
    files = [open(ctl / f"{s}.log", "wb") for s in SERVICES]  # noqa: SIM115
    procs = [subprocess.Popen(["docker", "exec", cid, "tail", "-c", "+1", "-F", "-s", "0.05",
                               f"/var/log/loon/{s}.log"], stdout=fh)
             for s, fh in zip(SERVICES, files, strict=True)]
    born = time.perf_counter()
    pid = int(state_of(d)["logger_pid"])
    watchers = [LatencyWatcher(Path(state_of(d)["session"])), LatencyWatcher(ctl)]
    cli_cpu = 0.0
    try:
        for w in watchers:
            w.start()
        time.sleep(WARMUP)
        start = time.time()
        cpu0, t0 = proc_cpu(pid), time.perf_counter()
        cli0 = sum(proc_cpu(p.pid) for p in procs)
        for w in watchers:
            w.window = (start, start + seconds)
        time.sleep(seconds)
        took = time.perf_counter() - t0
        logger_pct = 100 * (proc_cpu(pid) - cpu0) / took
        cli_window_pct = 100 * (sum(proc_cpu(p.pid) for p in procs) - cli0) / took
        time.sleep(1.0)
    finally:
        for w in watchers:
            w.stop_event.set()
            w.join()
        for p in procs:
            p.kill()
            ru = os.wait4(p.pid, 0)[2]
            p.returncode = -9
            cli_cpu += ru.ru_utime + ru.ru_stime
        lifetime = time.perf_counter() - born
        for fh in files:
            fh.close()
        subprocess.run(["docker", "exec", cid, "sh", "-c",
                        "for p in /proc/[0-9]*; do case \"$(tr '\\0' ' ' < $p/cmdline)\" in "
                        "'tail -c +1 -F -s 0.05 '*) kill ${p#/proc/};; esac; done 2>/dev/null"],
                       capture_output=True)
    return {"seconds": seconds, "load": loadavg(),
            "ours": {**_lat(watchers[0]), "cpu_pct": logger_pct},
            "cli": {**_lat(watchers[1]), "cpu_pct": cli_window_pct,
                    "cpu_life_pct": 100 * cli_cpu / lifetime}}


def paired_runs(d: Deployment, work: Path, seconds: float, runs: int) -> dict:
    """``runs`` paired windows one after the other; medians, and the per-run CPU ratio."""
    rs = [paired(d, work, seconds) for _ in range(runs)]
    out: dict = {"seconds": seconds, "runs": rs}
    for side in ("ours", "cli"):
        out[side] = {k: median([r[side][k] for r in rs])
                     for k in ("cpu_pct", "p50_ms", "p99_ms", "max_ms")}
        out[side]["lines"] = sum(r[side]["lines"] for r in rs)
        out[side]["gap_count"] = sum(r[side]["gap_count"] for r in rs)
    out["cli"]["cpu_life_pct"] = median([r["cli"]["cpu_life_pct"] for r in rs])
    out["ratio_runs"] = [r["ours"]["cpu_pct"] / r["cli"]["cpu_pct"] for r in rs]
    out["ratio"] = median(out["ratio_runs"])
    out["load"] = median([r["load"] for r in rs])
    return out


def sweep(work: Path, delays: list[float], seconds: float, runs: int) -> list[dict]:
    """The coalescing trade: for each delay (LOON_COALESCE_MS), a fresh background logger
    beside the CLI followers, ``runs`` paired windows: CPU ratio and latency."""
    rows = []
    for ms in delays:
        tmp = work / f"sweep-{ms:g}"
        d = writer_deployment(tmp, 0.01)
        try:
            res = d.run("-d", timeout=600, LOON_COALESCE_MS=f"{ms:g}")
            if res.returncode != 0:
                raise RuntimeError(f"build.py -d exited {res.returncode}: {res.stdout}"
                                   f"{res.stderr}")
            pr = paired_runs(d, tmp, seconds, runs)
            rows.append({"delay_ms": ms, **pr})
            say(f"sweep {ms:g} ms: ours {pr['ours']['cpu_pct']:.1f} % vs CLI "
                f"{pr['cli']['cpu_pct']:.1f} % ({pr['ratio']:.2f}x); p99 ours "
                f"{pr['ours']['p99_ms']:.1f} ms, CLI {pr['cli']['p99_ms']:.1f} ms")
        finally:
            d.run("-D", timeout=120)
            cleanup(d)
            remove_image(f"loon-test:{d.name}")
    return rows


def bench(work: Path, window: float) -> dict:
    results = {}
    for kind in ("quiet", "active"):
        tmp = work / f"steady-{kind}"
        d = quiet_deployment(tmp) if kind == "quiet" else writer_deployment(tmp, 0.01)
        try:
            say(f"steady {kind}: starting {d.name} detached (build.py -d), {window:.0f} s window")
            res = d.run("-d", timeout=600)
            if res.returncode != 0:
                raise RuntimeError(f"build.py -d exited {res.returncode}: {res.stdout}"
                                   f"{res.stderr}")
            check_source(d, EXEC)
            results[kind] = watch_logger(d, window, with_latency=kind == "active")
            r = results[kind]
            say(f"  logger cpu {r['cpu_pct']:.2f} %  rss {r['rss_max']:.1f} MiB"
                + (f"  p50 {r['p50_ms']:.1f} ms  p99 {r['p99_ms']:.1f} ms  max "
                   f"{r['max_ms']:.1f} ms  lines {r['lines']}  gaps {r['gap_count']}"
                   if kind == "active" else ""))
            if kind == "active":
                pr = results["paired"] = paired_runs(d, tmp, CONTROL, PAIRED_RUNS)
                say(f"  paired {PAIRED_RUNS} x {CONTROL:.0f} s: ours cpu "
                    f"{pr['ours']['cpu_pct']:.1f} % p50 {pr['ours']['p50_ms']:.1f} p99 "
                    f"{pr['ours']['p99_ms']:.1f} ms; docker CLI cpu {pr['cli']['cpu_pct']:.1f} % "
                    f"p50 {pr['cli']['p50_ms']:.1f} p99 {pr['cli']['p99_ms']:.1f} ms; "
                    f"ratio {pr['ratio']:.2f}x")
        finally:
            d.run("-D", timeout=120)
            cleanup(d)
            remove_image(f"loon-test:{d.name}")
    return results
