"""Throughput: 8 services x 1,000,000 lines (~55 MB) at once, three ways, same container.

ours  the real product: foreground ``build.py`` (the supervisor). Each service blocks on a
      FIFO until the benchmark releases all eight at once; each then ``cat``s its
      pre-generated file (built into the image) into ``/var/log/loon/sK.log`` while the
      supervisor follows it. Timed from the release (a ``docker exec`` that opens the FIFOs,
      so ours pays one CLI exec too) until all 8 session files hold the expected bytes.
(a)   docker CLI baseline: 8 concurrent ``docker exec C cat /var/log/loon/sK.log > file``.
(b)   the original tool's approach (bench/original.py): a thread per service reading a
      ``docker exec C tail -n +1 -f`` subprocess line by line.

(a) and (b) read the same, complete in-container files right after ours finished, while the
supervisor sits idle on them; their order alternates between runs. Every output file of
every method is checked byte for byte (sha256 and size) against the expected content.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.common import (
    EXEC,
    LOG_DIR,
    SERVICES,
    CpuMeter,
    check_source,
    cid_of,
    cleanup,
    loadavg,
    median,
    proc_cpu,
    remove_image,
    say,
    start_foreground,
    use_source,
)
from tests.engine_helpers import make_deployment

LINES = 1_000_000


def build_step(lines: int) -> str:
    return ("mkdir -p /opt/data && for i in " + " ".join(str(i) for i in range(8))
            + f"; do {{ echo s$i; seq 2 {lines}; }} > /opt/data/s$i.log; done")


def expected(lines: int = LINES) -> dict[str, tuple[int, str]]:
    """(size, sha256) per service: line 1 is the service's name, then 2..lines."""
    body = b"".join(b"%d\n" % n for n in range(2, lines + 1))
    out = {}
    for s in SERVICES:
        data = s.encode() + b"\n" + body
        out[s] = (len(data), hashlib.sha256(data).hexdigest())
    return out


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def verify(directory: Path, exp: dict[str, tuple[int, str]], method: str) -> None:
    for s, (size, digest) in exp.items():
        p = directory / f"{s}.log"
        got = p.stat().st_size if p.exists() else -1
        if got != size or sha256_file(p) != digest:
            raise RuntimeError(f"{method}: {p} is not byte-identical ({got} bytes, "
                               f"expected {size})")


def services() -> dict[str, str]:
    return {s: f"mkfifo /tmp/go-{s}; read x < /tmp/go-{s}; cat /opt/data/{s}.log; "
               "exec sleep 1000000" for s in SERVICES}


def release(cid: str) -> None:
    script = "; ".join(f"echo go > /tmp/go-{s}" for s in SERVICES)
    subprocess.run(["docker", "exec", cid, "sh", "-c", script], check=True)


def spy_on(pid: int, out: Path, rate: int = 1000) -> subprocess.Popen[bytes]:
    """py-spy on ``pid`` without pausing it (--nonblocking: a blocking sampler stopped the
    supervisor at every sample and slowed it 5x), collapsed stacks to ``out``. Only samples
    of the thread holding the GIL (--gil): py-spy's idle detection counts threads blocked
    in epoll or a queue as busy, so without it idle time shows up as work."""
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists():
        raise RuntimeError(f"py-spy is not installed: {spy.parent}/pip install py-spy")
    return subprocess.Popen([str(spy), "record", "--pid", str(pid), "--rate", str(rate),
                             "--nonblocking", "--gil", "--format", "raw",
                             "--output", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def spy_stop(spy: subprocess.Popen[bytes]) -> None:
    """SIGINT makes py-spy write what it sampled so far."""
    spy.send_signal(signal.SIGINT)
    spy.wait(timeout=60)


def run_ours(proc: subprocess.Popen[str], cid: str, session: Path,
             exp: dict[str, tuple[int, str]], profile: Path | None = None) -> dict:
    sizes = {s: exp[s][0] for s in SERVICES}
    paths = {s: session / f"{s}.log" for s in SERVICES}
    spy = spy_on(proc.pid, profile) if profile is not None else None
    time.sleep(1.0)  # let the freshly attached supervisor settle
    load = loadavg()
    cpu0 = proc_cpu(proc.pid)
    meter = CpuMeter.start(cid)
    t0 = time.perf_counter()
    release(cid)
    released = time.perf_counter() - t0  # the CLI exec that opens the FIFOs: a fixed cost
    deadline = t0 + 300
    while True:
        if all(paths[s].exists() and paths[s].stat().st_size >= sizes[s] for s in SERVICES):
            break
        if time.perf_counter() > deadline or proc.poll() is not None:
            raise RuntimeError("ours: the session files never reached the expected size")
        time.sleep(0.005)
    wall = time.perf_counter() - t0
    cpu = proc_cpu(proc.pid) - cpu0
    engine, inside = meter.stop()
    if spy is not None:
        spy_stop(spy)
    verify(session, exp, "ours")
    return {"wall": wall, "cpu": cpu, "engine_cpu": engine, "container_cpu": inside,
            "load": load, "release": released}


def run_cli(cid: str, out: Path, exp: dict[str, tuple[int, str]]) -> dict:
    out.mkdir(parents=True)
    load = loadavg()
    meter = CpuMeter.start(cid)
    files = [open(out / f"{s}.log", "wb") for s in SERVICES]  # noqa: SIM115
    t0 = time.perf_counter()
    procs = [subprocess.Popen(["docker", "exec", cid, "cat", f"{LOG_DIR}/{s}.log"], stdout=fh)
             for s, fh in zip(SERVICES, files, strict=True)]
    cpu = 0.0
    for p in procs:  # wait4 gives each child's own rusage
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        cpu += ru.ru_utime + ru.ru_stime
    wall = time.perf_counter() - t0
    engine, inside = meter.stop()
    for fh in files:
        fh.close()
    if any(p.returncode for p in procs):
        raise RuntimeError("(a): a docker exec cat failed")
    verify(out, exp, "(a) docker CLI")
    return {"wall": wall, "cpu": cpu, "engine_cpu": engine, "container_cpu": inside,
            "load": load}


def run_original(cid: str, out: Path, exp: dict[str, tuple[int, str]]) -> dict:
    load = loadavg()
    meter = CpuMeter.start(cid)
    sizes = json.dumps({s: exp[s][0] for s in SERVICES})
    res = subprocess.run([sys.executable, str(Path(__file__).with_name("original.py")), cid,
                          str(out), sizes, LOG_DIR], capture_output=True, text=True,
                         timeout=600)
    engine, inside = meter.stop()
    # The killed `docker exec` clients leave their `tail -f` running in the container.
    subprocess.run(["docker", "exec", cid, "sh", "-c",
                    "for p in /proc/[0-9]*; do case \"$(tr '\\0' ' ' < $p/cmdline)\" in "
                    "'tail -n +1 -f '*) kill ${p#/proc/};; esac; done 2>/dev/null"],
                   capture_output=True)
    if res.returncode != 0:
        raise RuntimeError(f"(b): original.py failed: {res.stdout} {res.stderr}")
    data = json.loads(res.stdout)
    verify(out, exp, "(b) original")
    return {"wall": data["wall"], "cpu": data["cpu"], "engine_cpu": engine,
            "container_cpu": inside, "load": load}


def bench(work: Path, runs: int, lines: int = LINES, profile: Path | None = None) -> dict:
    say(f"throughput: computing the expected content (8 x {lines:,} lines)")
    exp = expected(lines)
    total = sum(size for size, _ in exp.values())
    results: dict[str, list[dict]] = {"ours": [], "cli": [], "original": []}
    tags = []
    for r in range(runs):
        tmp = work / f"throughput-{r}"
        d = make_deployment(tmp, services(), stop_timeout=10, build_step=build_step(lines))
        use_source(d, EXEC)
        tags.append(f"loon-test:{d.name}")
        try:
            say(f"throughput run {r + 1}/{runs}: starting {d.name} (build.py, foreground)")
            proc = start_foreground(d)
            check_source(d, EXEC)
            cid = cid_of(d.name)
            ours = run_ours(proc, cid, d.session(), exp,
                            profile / f"throughput-{r}.folded" if profile else None)
            results["ours"].append(ours)
            say(f"  ours      {total / 1e6 / ours['wall']:7.1f} MB/s  cpu {ours['cpu']:.2f}s")
            order = ["cli", "original"] if r % 2 == 0 else ["original", "cli"]
            for method in order:
                out = tmp / f"out-{method}"
                res = (run_cli(cid, out, exp) if method == "cli"
                       else run_original(cid, out, exp))
                results[method].append(res)
                say(f"  {method:9} {total / 1e6 / res['wall']:7.1f} MB/s  cpu {res['cpu']:.2f}s")
                shutil.rmtree(out)
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=120)
        finally:
            cleanup(d)
            shutil.rmtree(tmp, ignore_errors=True)
    for tag in tags:
        remove_image(tag)
    summary = {}
    for method, rs in results.items():
        walls = [x["wall"] for x in rs]
        summary[method] = {
            "runs": rs,
            "mbps": median([total / 1e6 / w for w in walls]),
            "wall": median(walls),
            "cpu": median([x["cpu"] for x in rs]),
            "engine_cpu": median([x["engine_cpu"] for x in rs]),
            "container_cpu": median([x["container_cpu"] for x in rs]),
            "mbps_runs": [total / 1e6 / w for w in walls],
        }
    # Ratios per run (same run, same container), then the median of those.
    for base in ("cli", "original"):
        ratios = [o["wall"] and b["wall"] / o["wall"]
                  for o, b in zip(results["ours"], results[base], strict=True)]
        summary[f"ratio_vs_{base}"] = median(ratios)
        summary[f"ratio_vs_{base}_runs"] = ratios
    summary["release"] = median([x["release"] for x in results["ours"]])
    summary["bytes"] = total
    summary["lines"] = lines * len(SERVICES)
    return summary
