"""``loon logs`` on a big session file against ``tail`` and ``cat`` (issue 29).

Makes a session file of ``--megabytes`` (default 500) of 100-byte lines, then times, each
the median of ``--runs`` (interleaved round by round): ``tail -n 3`` and ``loon logs mysql -n 3``; ``cat`` and
``loon logs mysql -n all`` (with the ``mysql | `` prefix, and with ``--no-log-prefix``),
both into /dev/null; and ``loon logs mysql -n 0`` as the tool's start-up. The goal: each
``loon logs`` figure within 2x of its tool plus that start-up. Run:
``.venv/bin/python -m bench.logs_big``; prints a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def _once(cmd: str, env: dict[str, str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system of the command's processes): on a shared
    machine the wall time mostly measures the neighbours."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, shell=True, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def _time_all(cmds: list[str], env: dict[str, str], runs: int) -> list[tuple[float, float]]:
    """Median wall and CPU time of each command, the commands interleaved round by round
    (a neighbour's burst then weighs on every row alike, not on one row's ratio)."""
    took: list[list[tuple[float, float]]] = [[] for _ in cmds]
    for _ in range(runs):
        for i, cmd in enumerate(cmds):
            took[i].append(_once(cmd, env))
    return [(_median([w for w, _ in t]), _median([c for _, c in t])) for t in took]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--megabytes", type=int, default=500)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="loon-bench-logs-") as tmp:
        session = Path(tmp) / "logs" / "logs_2026-01-01_00-00-00"
        session.mkdir(parents=True)
        (session / "out.log").write_text("2026-01-01 00:00:00 started\n")
        line = b"2026-01-01 00:00:00 0 [Note] InnoDB: a line of about one hundred bytes, " \
               b"as MariaDB writes them\n"
        block = line * (1024 * 1024 // len(line))
        with open(session / "mysql.log", "wb") as fh:
            for _ in range(args.megabytes):
                fh.write(block)
        os.sync()
        log = session / "mysql.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOON_")}
        env["LOON_PROJECT_ROOT"] = tmp
        loon = f"{sys.executable} -m loon_supervisor logs mysql"
        subprocess.run(f"cat {log}", shell=True, stdout=subprocess.DEVNULL, check=True)  # cache
        plan = [
            ("start-up: loon logs -n 0", f"{loon} -n 0", None),
            ("tail -n 3", f"tail -n 3 {log}", None),
            ("loon logs -n 3", f"{loon} -n 3", "tail -n 3"),
            ("cat", f"cat {log}", None),
            ("loon logs -n all", f"{loon} -n all", "cat"),
            ("loon logs -n all --no-log-prefix", f"{loon} -n all --no-log-prefix", "cat"),
        ]
        timed = _time_all([cmd for _, cmd, _ in plan], env, args.runs)
        rows = [(name, took, against) for (name, _, against), took in zip(plan, timed, strict=True)]
    base = {name: took for name, took, _ in rows}
    start = base["start-up: loon logs -n 0"]
    print(f"| {args.megabytes} MiB session file, 100-byte lines | wall s | CPU s | CPU against "
          "(tool + start-up) | wall against (tool + start-up) |")
    print("|---|---|---|---|---|")
    for name, (wall, cpu), against in rows:
        ratios = ["", ""]
        if against:
            ratios = [f"{cpu / (base[against][1] + start[1]):.2f}x",
                      f"{wall / (base[against][0] + start[0]):.2f}x"]
        print(f"| {name} | {wall:.3f} | {cpu:.3f} | {ratios[0]} | {ratios[1]} |")


if __name__ == "__main__":
    main()
