"""Profiles that explain the figures: py-spy (``--nonblocking``, so the supervisor is never
paused; --gil: Python work only) on our process in four situations, after the measured parts and apart from them, so
the sampler's own cost touches no reported figure.

steady-exec     the background logger on exec streams, 8 x 100 lines/s, WINDOW s
steady-hostdir  the same on the host-directory fast path
tput-exec       one foreground throughput run (8 x LINES lines) on exec streams
tput-hostdir    the same on the fast path

Each profile is summarised as the share of on-CPU samples per stage of the data flow
(the first stage named from the innermost frame outwards) and the top frames by own time.
py-spy samples Python frames only: time in a C call (``os.write``, ``recv``) counts for the
Python frame that made it, which is what attributes it to a stage.
"""

from __future__ import annotations

import collections
import time
from pathlib import Path

from bench import fastpath, throughput
from bench.common import (
    EXEC,
    check_source,
    cleanup,
    proc_cpu,
    remove_image,
    say,
    state_of,
    writer_deployment,
)

# (stage, substrings of a frame's "function (file:line)"), matched innermost frame first.
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("exec frames: socket reads, frame parsing", ("engine/exec/", "sources/exec.py",
                                                  "aiohttp/", "selector_events.py",
                                                  "raw.py")),
    ("host files: inotify, pread", ("sources/hostdir.py", "inotify_simple")),
    ("session files: line cutting, writes", ("stream_copy.py", "sinks/files.py", "aiofiles",
                                             "concurrent/futures/thread.py")),
    ("following: rotation, cursors, resync", ("streams/follow.py", "streams/cursor.py")),
    ("status watch, state, out.log", ("status", "state.py", "crashloop", "deployment.py",
                                      "session.py", "reporter.py")),
    ("event loop, task switching", ("asyncio/", "anyio/", "selectors.py", "sniffio")),
)
OTHER = "other"
RATE = 1000  # samples per second (throughput.spy_on's default)
HOSTDIR = "hostdir"


def _frames(line: str) -> tuple[list[str], int] | None:
    stack, _, n = line.rpartition(" ")
    if not stack or not n.isdigit():
        return None
    # py-spy --threads puts "process ..." and "thread (0x..)" first: not frames.
    frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
    return frames, int(n)


def stage_of(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, keys in STAGES:
            if any(k in frame for k in keys):
                return name
    return OTHER


def summarise(folded: Path, top: int = 6) -> dict:
    """Shares of on-CPU samples by stage, and the top frames by own samples."""
    stages: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in folded.read_text().splitlines():
        parsed = _frames(line)
        if parsed is None or not parsed[0]:
            continue
        frames, n = parsed
        total += n
        stages[stage_of(frames)] += n
        leaf = frames[-1]
        # "func (path/to/module.py:123)" -> "func (module.py)": lines of one function together
        func, _, where = leaf.partition(" (")
        own[f"{func} ({Path(where.split(':')[0]).name})"] += n
    if not total:
        return {"samples": 0, "stages": {}, "top": []}
    return {"samples": total,
            "stages": {k: 100 * v / total for k, v in stages.most_common()},
            "top": [(f, 100 * c / total) for f, c in own.most_common(top)]}


def _steady(work: Path, kind: str, seconds: float, rate: int) -> dict:
    d = writer_deployment(work / f"prof-steady-{kind}", 0.01, source=kind)
    try:
        res = d.run("-d", timeout=600)
        if res.returncode != 0:
            raise RuntimeError(f"build.py -d exited {res.returncode}: {res.stdout}{res.stderr}")
        check_source(d, kind)
        pid = int(state_of(d)["logger_pid"])
        time.sleep(3)
        folded = work / f"steady-{kind}.folded"
        cpu0 = proc_cpu(pid)  # over the sampler's whole life, as its samples are
        spy = throughput.spy_on(pid, folded, rate)
        time.sleep(seconds)
        throughput.spy_stop(spy)
        cpu = proc_cpu(pid) - cpu0
        res = summarise(folded)
        return {"what": f"background logger, {kind}, 8 x 100 lines/s, {seconds:.0f} s",
                "cpu_s": cpu, "python_s": res["samples"] / rate, **res}
    finally:
        d.run("-D", timeout=120)
        cleanup(d)
        remove_image(f"loon-test:{d.name}")


def bench(work: Path, seconds: float = 15.0, lines: int = throughput.LINES) -> dict:
    out: dict[str, dict] = {}
    for kind in (EXEC, HOSTDIR):
        say(f"profile: steady logger on {kind} ({seconds:.0f} s, py-spy --nonblocking)")
        out[f"steady-{kind}"] = _steady(work, kind, seconds, rate=RATE)
    spies = work / "spy"
    spies.mkdir(exist_ok=True)
    say("profile: one throughput run on exec under py-spy (not counted in the figures)")
    t = throughput.bench(work, 1, lines, spies)
    res = summarise(spies / "throughput-0.folded")
    out["tput-exec"] = {"what": f"foreground supervisor, exec, 8 x {lines:,} lines "
                        f"({t['ours']['mbps']:.0f} MB/s under the sampler)",
                        "cpu_s": t["ours"]["cpu"], "python_s": res["samples"] / RATE, **res}
    say("profile: one throughput run on the fast path under py-spy")
    f = fastpath.bench_throughput(work, 1, lines, spies)
    res = summarise(spies / "fast-0.folded")
    out["tput-hostdir"] = {"what": f"foreground supervisor, hostdir, 8 x {lines:,} lines "
                           f"({f['ours_mbps']:.0f} MB/s under the sampler)",
                           "cpu_s": f["runs"][0]["ours"]["cpu"],
                           "python_s": res["samples"] / RATE, **res}
    for k, v in out.items():
        say(f"  {k}: {v['samples']} samples; "
            + ", ".join(f"{s} {p:.0f} %" for s, p in v["stages"].items()))
    return out


def lines(prof: dict) -> list[str]:
    """Markdown for the section."""
    out = ["| Profile | CPU-s of the process / of it in Python code (GIL samples) | share "
           "of the Python samples by stage | top frames (own) |", "|---|---|---|---|"]
    for v in prof.values():
        stages = "; ".join(f"{s} {p:.0f} %" for s, p in v["stages"].items())
        tops = "; ".join(f"`{f}` {p:.0f} %" for f, p in v["top"])
        share = 100 * v["python_s"] / v["cpu_s"] if v.get("cpu_s") else float("nan")
        out.append(f"| {v['what']} | {v.get('cpu_s', float('nan')):.2f} / "
                   f"{v['python_s']:.2f} ({share:.0f} %) | {stages} | {tops} |")
    out += ["", "py-spy samples Python frames of the thread holding the GIL; a process's "
            "CPU outside them is the kernel's (wake-ups, epoll, the syscalls that read and "
            "write) and the interpreter's own. Where the Python share is small, what is left "
            "to save is wake-ups, not code."]
    return out
