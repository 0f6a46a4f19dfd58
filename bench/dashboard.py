"""The dashboard's live log: what 20 viewers of one service cost the host, against one
``docker logs -f``, and how late a line reaches a viewer.

Run alone: ``.venv/bin/python -m bench.dashboard [--window 20] [--viewers 20]`` (appends a
dated section to BENCHMARKS.md unless --no-write). One deployment of bench/common.py's
writers (8 services, each a perl writer of timestamped lines every 10 ms, 100 lines/s) is
started with ``build.py -d`` on the default log source, and ``loon dashboard`` serves it.
A companion container from the same image runs the same writer on its stdout, so
``docker logs -f`` has the same stream to follow. Three windows of WINDOW s, one after the
other, with everything running:

idle     no viewer, no follower: the baseline CPU of the dashboard and of the engine
viewers  VIEWERS Server-Sent Events clients (aiohttp, in this process) on service s0; each
         line carries its write time (gettimeofday in the container, same clock), so
         arrival - write gives the latency from the write to a viewer
logs     one ``docker logs -f <companion> > /dev/null``

Cost = the dashboard process's CPU over the window minus its idle CPU (viewers), and the
docker CLI's CPU plus the engine's (dockerd, containerd, shim) CPU over the window minus the
engine's idle CPU (logs). The viewers' own CPU is not counted: they stand for browsers on
the operators' machines.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import aiohttp
import anyio

from bench.common import (
    ROOT,
    CpuMeter,
    cid_of,
    cleanup,
    loadavg,
    machine,
    percentile,
    proc_cpu,
    say,
    writer_deployment,
)
from bench.report import append
from tests.dashboard.support import start_dashboard


def _viewers(url: str, password: str, n: int, seconds: float, lat: list[float],
             counts: list[int], ready: threading.Event) -> None:
    async def one(i: int, session: aiohttp.ClientSession) -> None:
        async with session.get(f"{url}/dashboard/logs/stream?service=s0",
                               timeout=aiohttp.ClientTimeout(total=None)) as r:
            async for raw in r.content:
                if not raw.startswith(b"data: "):
                    continue
                now = time.time() * 1e6
                for m in re.finditer(r'"s0 \d+ (\d+)"', raw.decode("utf-8", "replace")):
                    if i == 0:
                        lat.append((now - int(m.group(1))) / 1000)
                    counts[i] += 1

    async def main() -> None:
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as session:
            await session.post(f"{url}/dashboard/login", data={"name": "bench",
                                                               "password": password})
            with anyio.move_on_after(seconds + 5):
                async with anyio.create_task_group() as tg:
                    for i in range(n):
                        tg.start_soon(one, i, session)
                    ready.set()

    anyio.run(main)


def run(window: float, viewers: int) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="loon-bench-dash-"))
    d = writer_deployment(tmp, 0.01, source="auto")
    companion = f"{d.name}-stdout"
    dash = None
    try:
        assert d.run("-d", timeout=300).returncode == 0
        cid = cid_of(d.name)
        image = subprocess.run(["docker", "inspect", "--format", "{{.Config.Image}}", d.name],
                               capture_output=True, text=True, check=True).stdout.strip()
        subprocess.run(["docker", "run", "-d", "--network", "none", "--name", companion,
                        image, "perl", "/app/writer.pl", "s0", "0.01"], check=True,
                       capture_output=True)
        dash = start_dashboard(tmp, d.env(), d.config, "--max-connections-per-client",
                               str(viewers + 10), "--max-connections", str(viewers + 50))
        pid = dash.proc.pid
        time.sleep(3)

        def window_cpu() -> tuple[float, float]:
            meter = CpuMeter.start(cid)
            c0 = proc_cpu(pid)
            time.sleep(window)
            engine, _ = meter.stop()
            return proc_cpu(pid) - c0, engine

        say("idle window")
        idle_dash, idle_engine = window_cpu()
        say(f"{viewers} viewers window")
        lat: list[float] = []
        counts = [0] * viewers
        ready = threading.Event()
        t = threading.Thread(target=_viewers, args=(dash.url, dash.password, viewers, window + 2,
                                                    lat, counts, ready), daemon=True)
        t.start()
        ready.wait(30)
        time.sleep(2)
        lat.clear()
        view_dash, view_engine = window_cpu()
        t.join(30)
        say("docker logs -f window")
        follower = subprocess.Popen(["docker", "logs", "-f", "--tail", "0", companion],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(2)
        f0 = proc_cpu(follower.pid)
        logs_dash, logs_engine = window_cpu()
        cli = proc_cpu(follower.pid) - f0
        follower.terminate()
        follower.wait(10)
        lat.sort()
        viewers_cost = max(view_dash - idle_dash, 0.0)
        logs_cost = cli + max(logs_engine - idle_engine, 0.0)
        return {
            "window": window, "viewers": viewers,
            "idle_dash": idle_dash, "idle_engine": idle_engine,
            "view_dash": view_dash, "view_engine": view_engine,
            "logs_cli": cli, "logs_engine": logs_engine,
            "viewers_cost": viewers_cost, "logs_cost": logs_cost,
            "lines_per_viewer": min(counts) if counts else 0,
            "p50": percentile(lat, 50) if lat else float("nan"),
            "p99": percentile(lat, 99) if lat else float("nan"),
            "max": lat[-1] if lat else float("nan"), "samples": len(lat),
        }
    finally:
        if dash is not None:
            dash.stop()
        subprocess.run(["docker", "rm", "-f", companion], capture_output=True)
        cleanup(d)


def section(r: dict, m: dict, load: tuple[float, float]) -> str:
    w = r["window"]
    pct = lambda s: f"{s / w * 100:.2f} %"  # noqa: E731
    ratio = r["viewers_cost"] / r["logs_cost"] if r["logs_cost"] else float("nan")
    return f"""
## {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {m.get('host', 'this machine')}: dashboard live log (bench/dashboard.py)

Machine: {m.get('cpu', '?')}, {m.get('memory', '?')} RAM, kernel {m.get('kernel', '?')}, Docker {m.get('docker', '?')}, Python {m.get('python', '?')}. Load average {load[0]:.2f} at the start, {load[1]:.2f} at the end.
One service at 100 lines/s (plus 7 more writing in the same container), {w:.0f} s windows.

| Target | Measured | |
|---|---|---|
| {r['viewers']} viewers on one service cost less than one `docker logs -f` | {ratio:.2f}x of it | {"met" if ratio < 1 else "**missed**"} |
| A line written in the container reaches a viewer within 1 s | p50 {r['p50']:.0f} ms, p99 {r['p99']:.0f} ms, max {r['max']:.0f} ms ({r['samples']} lines) | {"met" if r['max'] < 1000 else "**missed**"} |

| Window | dashboard CPU | engine CPU | docker CLI CPU | cost counted |
|---|---|---|---|---|
| idle (no viewer, no follower) | {pct(r['idle_dash'])} | {pct(r['idle_engine'])} | - | - |
| {r['viewers']} SSE viewers of s0 | {pct(r['view_dash'])} | {pct(r['view_engine'])} | - | {pct(r['viewers_cost'])} (dashboard - idle) |
| one `docker logs -f` of the same stream | {pct(r['idle_dash'])} idle | {pct(r['logs_engine'])} | {pct(r['logs_cli'])} | {pct(r['logs_cost'])} (CLI + engine - idle engine) |

CPU is % of one core over the window, medians of {r.get('runs', 1)} rounds (a fresh deployment
each); "cost counted" is the median of each round's cost (not the difference of the medians
shown beside it), and the ratio per round was {r.get('ratios', '-')}. Each viewer received at least
{r['lines_per_viewer']} lines in a round. The engine's idle CPU moves by several points
between windows on this shared machine (other helpers' containers run on the same engine),
so the `docker logs -f` cost is the noisier figure.
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.dashboard", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--window", type=float, default=20.0)
    p.add_argument("--viewers", type=int, default=20)
    p.add_argument("--runs", type=int, default=3, help="rounds of the three windows; the "
                   "table shows medians (the engine's CPU is noisy on a shared machine)")
    p.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md")
    p.add_argument("--no-write", action="store_true")
    ns = p.parse_args(argv)
    l0 = loadavg()
    rounds = [run(ns.window, ns.viewers) for _ in range(ns.runs)]
    r = {k: (statistics.median(x[k] for x in rounds) if isinstance(rounds[0][k], float)
             else rounds[0][k]) for k in rounds[0]}
    r["ratios"] = ", ".join(f"{x['viewers_cost'] / x['logs_cost']:.2f}" if x["logs_cost"]
                            else "nan" for x in rounds)
    r["lines_per_viewer"] = min(x["lines_per_viewer"] for x in rounds)
    r["runs"] = ns.runs
    text = section(r, machine(), (l0, loadavg()))
    print(text)
    if not ns.no_write:
        append(ns.output, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
