"""Teardown: SIGINT to a foreground ``build.py`` until it exits, every file complete.

Each run starts 8 perl writers (a line every 10 ms, a last ``bye`` line on TERM), lets them
write for a few seconds, sends SIGINT and times until the process has exited. Then every
session file must be complete: numbered lines 1..N without a gap, each ending in a newline,
and the service's ``bye`` line last.

graceful  every service exits on TERM at once (stopTimeout 10).
stubborn  one service ignores TERM, so the engine kills it at the stop timeout (stopTimeout
          5): the worst case, bounded by the target "stop timeout + 2 s". Its file must still
          be complete up to its last line (no bye line: it died by SIGKILL).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

from bench.common import (
    SERVICES,
    median,
    remove_image,
    say,
    start_foreground,
    writer_deployment,
)

RUN_FOR = 3.0


def check_complete(session: Path, stubborn: tuple[str, ...]) -> None:
    for s in SERVICES:
        data = (session / f"{s}.log").read_bytes()
        if not data.endswith(b"\n"):
            raise RuntimeError(f"teardown: {s}.log ends in a partial line")
        lines = data.splitlines()
        numbered = [ln for ln in lines if not ln.startswith(b"bye ")]
        for k, line in enumerate(numbered, 1):
            name, i, _ = line.split()
            if name.decode() != s or int(i) != k:
                raise RuntimeError(f"teardown: {s}.log line {k} is {line!r}")
        if s not in stubborn and lines[-1] != f"bye {s} {len(numbered)}".encode():
            raise RuntimeError(f"teardown: {s}.log does not end with its bye line: "
                               f"{lines[-1]!r}")
        if len(numbered) < 100:
            raise RuntimeError(f"teardown: {s}.log has only {len(numbered)} lines")


def one(work: Path, stop_timeout: int, stubborn: tuple[str, ...]) -> float:
    d = writer_deployment(work, 0.01, stop_timeout=stop_timeout, stubborn=stubborn)
    try:
        proc = start_foreground(d)
        time.sleep(RUN_FOR)
        t0 = time.perf_counter()
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=stop_timeout + 60)
        took = time.perf_counter() - t0
        if proc.returncode != 130:
            raise RuntimeError(f"teardown: exit code {proc.returncode}, expected 130")
        check_complete(d.session(), stubborn)
        return took
    finally:
        d.cleanup()
        remove_image(f"loon-test:{d.name}")


def bench(work: Path, runs: int) -> dict:
    out = {}
    for kind, stop_timeout, stubborn in (("graceful", 10, ()), ("stubborn", 5, ("s7",))):
        times = []
        for r in range(runs):
            took = one(work / f"teardown-{kind}-{r}", stop_timeout, stubborn)
            times.append(took)
            say(f"teardown {kind} run {r + 1}/{runs}: SIGINT to exit {took:.2f} s "
                f"(stop timeout {stop_timeout} s), files complete")
        out[kind] = {"stop_timeout": stop_timeout, "runs": times, "median": median(times),
                     "max": max(times)}
    return out
