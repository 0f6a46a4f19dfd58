"""Teardown: SIGINT to a foreground ``build.py`` until it exits, every file complete.

Each run starts 8 perl writers (a line every 10 ms, a last ``bye`` line on TERM), lets them
write for a few seconds, sends SIGINT and times until the process has exited. Then every
session file must be complete: numbered lines 1..N without a gap, each ending in a newline,
and the service's ``bye`` line last.

graceful  every service exits on TERM at once (stopTimeout 10).
stubborn  one service ignores TERM, so the engine kills it at the stop timeout (stopTimeout
          5): the worst case, bounded by the target "stop timeout + 2 s". Its file must still
          be complete up to its last line (no bye line: it died by SIGKILL).
capped    memory at teardown with the in-container files at the rotation cap (supervisord's
          ``stdout_logfile_maxbytes=50MB`` in docker/): each of the 8 services writes 50 MiB
          of lines at once; SIGINT follows as soon as every file is at the cap, so the bytes
          the followers have not read yet reach the host through the final collection. The
          supervisor's peak RSS over its whole life (VmHWM, read until it exits; see
          common.peak_until_exit) must stay bounded: the collection streams, it does not
          load the files. Every host file must hold only whole, expected lines.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

from bench.common import (
    EXEC,
    SERVICES,
    cid_of,
    cleanup,
    median,
    peak_until_exit,
    remove_image,
    say,
    start_foreground,
    use_source,
    writer_deployment,
)

RUN_FOR = 3.0
CAP = 50 * 1024 * 1024  # supervisord's stdout_logfile_maxbytes=50MB (docker/rootfs/...)
CAP_LINE = b"0123456789 the quick brown fox jumps over the lazy dog 0123456789 abcdefghij"


def capped_services() -> dict[str, str]:
    line = CAP_LINE.decode()
    return {s: f"mkfifo /tmp/go-{s}; read x < /tmp/go-{s}; yes '{line}' | head -c {CAP}; "
               "exec sleep 1000000" for s in SERVICES}


def capped(work: Path) -> dict:
    """Peak RSS of the supervisor when 8 x 50 MiB are collected at the teardown."""
    from tests.engine_helpers import make_deployment

    d = make_deployment(work, capped_services(), stop_timeout=10)
    use_source(d, EXEC)
    try:
        proc = start_foreground(d)
        peak: dict = {}
        sampler = threading.Thread(target=peak_until_exit, args=(proc.pid, peak), daemon=True)
        sampler.start()
        cid = cid_of(d.name)
        script = "; ".join(f"echo go > /tmp/go-{s}" for s in SERVICES)
        subprocess.run(["docker", "exec", cid, "sh", "-c", script], check=True)
        sizes = " ".join(f"/var/log/loon/{s}.log" for s in SERVICES)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # every file at the cap, then the SIGINT
            res = subprocess.run(["docker", "exec", cid, "sh", "-c", f"stat -c %s {sizes}"],
                                 capture_output=True, text=True)
            if [int(x) for x in res.stdout.split()] == [CAP] * len(SERVICES):
                break
            time.sleep(0.05)
        out: list[str] = []
        reader = threading.Thread(target=lambda: out.append(proc.stdout.read()  # type: ignore
                                                            if proc.stdout else ""))
        reader.start()
        t0 = time.perf_counter()
        proc.send_signal(signal.SIGINT)
        _, status, _ru = os.wait4(proc.pid, 0)
        took = time.perf_counter() - t0
        sampler.join(timeout=10)
        proc.returncode = os.waitstatus_to_exitcode(status)
        reader.join()
        if proc.returncode != 130:
            raise RuntimeError(f"capped: exit code {proc.returncode}, expected 130")
        total, collected = 0, 0
        for s in SERVICES:
            data = (d.session() / f"{s}.log").read_bytes()
            total += len(data)
            lines = data.split(b"\n")
            if lines[-1] != b"" and not CAP_LINE.startswith(lines[-1]):
                raise RuntimeError(f"capped: {s}.log ends in a foreign partial line")
            if any(ln != CAP_LINE for ln in lines[:-1]):
                raise RuntimeError(f"capped: {s}.log holds a line that was never written")
        text = (d.session() / "out.log").read_text(errors="replace")
        collected = sum(int(n) for n in re.findall(r"collected (\d+) final bytes", text))
        return {"peak_rss_mb": peak.get("hwm", float("nan")), "seconds": took,
                "host_mb": total / 2**20, "collected_mb": collected / 2**20}
    finally:
        cleanup(d)
        remove_image(f"loon-test:{d.name}")


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
        cleanup(d)
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
    c = capped(work / "teardown-capped")
    out["capped"] = c
    say(f"teardown capped (8 x 50 MiB): peak RSS {c['peak_rss_mb']:.1f} MiB, "
        f"{c['collected_mb']:.1f} of {c['host_mb']:.1f} MiB collected after the stop, "
        f"SIGINT to exit {c['seconds']:.2f} s")
    return out
