"""The benchmark suite, one command: ``bash bench/run.sh`` (or ``.venv/bin/python -m bench``).

Runs throughput, steady state (latency and logger overhead), the coalescing sweep and
teardown on exec streams, validation, the real Loon image (under the ports lock, see
bench/real_image.py), the local fast path against the docker CLI (bench/fastpath.py) and the
profiles that explain the figures (bench/profiles.py, py-spy) against the real engine, then
appends one dated section with the machine, every target and the tables to BENCHMARKS.md.
Assumes the README's set-up (``bash scripts/test.sh`` made .venv and the engine); the
profile part installs nothing itself: ``.venv/bin/pip install py-spy`` (bench/run.sh does).
About 35 minutes with the defaults.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench import (
    drain,
    fastpath,
    profiles,
    real_image,
    report,
    steady,
    teardown,
    throughput,
    validation,
)
from bench.common import ROOT, loadavg, machine, other_containers, say

# validation first: it times process start-ups (~0.2 s), which the page-cache writeback of
# the teardown part's 400 MiB slowed by half in a run that had it after that part.
SECTIONS = ("validation", "throughput", "steady", "sweep", "teardown", "drain", "real",
            "fastpath", "profile")
SWEEP = "0,5,10,15,20"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=5, help="runs per throughput/teardown case "
                   "and paired windows per sweep row (medians are reported); default 5")
    p.add_argument("--sweep", default=SWEEP, help="coalescing delays (ms, comma-separated) "
                   f"for the sweep part; default {SWEEP}")
    p.add_argument("--window", type=float, default=60.0, help="steady-state window, seconds "
                   "(default 60)")
    p.add_argument("--lines", type=int, default=throughput.LINES,
                   help="lines per service in the throughput case (default 1,000,000; "
                   "100000 gives the up-flow issue's 8 x 100k)")
    p.add_argument("--baseline", default=drain.BASELINE, help="git revision the drain part "
                   f"compares the current code with (default {drain.BASELINE})")
    p.add_argument("--drain-window", type=float, default=20.0, help="drain part: steady-state "
                   "window per paired run, seconds (default 20)")
    p.add_argument("--only", action="append", choices=SECTIONS,
                   help="run only this part (repeatable)")
    p.add_argument("--skip", action="append", choices=SECTIONS, default=[],
                   help="leave this part out (repeatable)")
    p.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md",
                   help="markdown file to append to (default BENCHMARKS.md)")
    p.add_argument("--no-write", action="store_true", help="print the section, append nothing")
    p.add_argument("--json", type=Path, help="also write the raw results here")
    p.add_argument("--profile", type=Path, help="py-spy (pip install py-spy) the supervisor "
                   "during each throughput run; collapsed stacks go to this directory")
    ns = p.parse_args(argv)
    parts = [x for x in ns.only or SECTIONS if x not in ns.skip]

    started = time.time()
    results: dict = {"machine": machine(), "started": started, "runs": ns.runs,
                     "window": ns.window, "load_start": loadavg(),
                     "other_containers": other_containers()}
    say(f"machine: {results['machine']}; load {results['load_start']}, "
        f"{results['other_containers']} other containers running")
    work = Path(tempfile.mkdtemp(prefix="loon-bench-"))
    delays = [float(x) for x in ns.sweep.split(",") if x.strip()]
    jobs = {
        "validation": lambda: validation.bench(work, max(5, ns.runs)),
        "throughput": lambda: throughput.bench(work, ns.runs, ns.lines, ns.profile),
        "steady": lambda: steady.bench(work, ns.window),
        "sweep": lambda: steady.sweep(work, delays, steady.CONTROL, ns.runs),
        "teardown": lambda: teardown.bench(work, ns.runs),
        "drain": lambda: drain.bench(work, ns.runs, ns.drain_window, ns.baseline),
        "real": lambda: real_image.bench(work, ns.window),
        "fastpath": lambda: fastpath.bench(work, ns.runs, ns.lines),
        "profile": lambda: profiles.bench(work, lines=ns.lines),
    }
    if ns.profile:
        ns.profile.mkdir(parents=True, exist_ok=True)
    try:
        for part in SECTIONS:
            if part not in parts:
                continue
            try:  # one part failing must not lose the others' figures
                results[part] = jobs[part]()
                if ns.json:  # what is measured so far survives an interrupted run
                    ns.json.write_text(json.dumps(results, indent=1, default=str))
            except Exception as exc:  # noqa: BLE001
                say(f"{part}: FAILED: {type(exc).__name__}: {exc}")
                results.setdefault("failed", {})[part] = f"{type(exc).__name__}: {exc}"
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["duration"] = time.time() - started
    results["load_end"] = loadavg()
    text = report.section(results)
    print(text)
    if ns.json:
        ns.json.write_text(json.dumps(results, indent=1, default=str))
    if not ns.no_write:
        report.append(ns.output, text)
        say(f"appended to {ns.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
