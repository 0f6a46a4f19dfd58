"""How long Loon takes to come back after an engine restart that stops its containers (a
private dockerd without live-restore, stopped and started again: what a reboot does to the
engine), against the engine's own start, in the same run.

Each run deploys a busybox test image (tests/reboot/support.py: two services writing
numbered lines) with ``build.py -d`` on a fresh private dockerd, lets it write, stops the
engine (its containers stop with it) and starts it again. From the start command:

engine      until the engine answers (``docker info``): the baseline
running     until Loon's container runs again (its restart policy, ``unless-stopped``)
logging     until the first new line is in the session's host file (the follower re-attached)

Cases: the background logger of ``up -d`` on each log source (it lives through the engine
restart); and a reboot, where every follower got SIGTERM (they detach) and ``loon attach
--wait`` (what ``loon service install`` runs) is started before the engine, as at boot.
Every run also checks that each file holds every line once and in order.

    .venv/bin/python -m bench.engine_restart [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import loadavg, machine
from tests.engine_helpers import wait_until
from tests.reboot.support import (
    Comeback,
    check_continued,
    deploy_on,
    kill_followers,
    private_engine,
    restart_engine,
)

CASES = ("logger, exec", "logger, hostdir", "reboot, service follower")


def one(case: str) -> Comeback:
    with tempfile.TemporaryDirectory(prefix="bench-restart-") as tmp:
        engine = private_engine()
        d = deploy_on(Path(tmp), engine, "hostdir" if "hostdir" in case else "exec")
        procs: list[subprocess.Popen[str]] = []
        try:
            engine.start()
            r = d.run("-d", timeout=180, DOCKER_HOST=engine.host)
            assert r.returncode == 0, r.stdout + r.stderr
            between = None
            if case.startswith("reboot"):
                state = d.project / ".build-files" / f"state.{d.name}.json"
                logger = json.loads(state.read_text())["logger_pid"]
                wait_until(lambda: (d.session() / "c.log").exists())
                os.kill(logger, signal.SIGTERM)  # shutdown: the logger detaches

                def between() -> None:
                    procs.append(subprocess.Popen(
                        [sys.executable, "-m", "loon_supervisor", "attach", "--name", d.name,
                         "--wait"], cwd=d.root, env=d.env(DOCKER_HOST=engine.host),
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            took = restart_engine(d, engine, between=between)
            check_continued(d, engine)
            return took
        finally:
            for p in procs:
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=30)
            kill_followers(d)
            engine.destroy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    load0 = loadavg()
    results: dict[str, list[Comeback]] = {c: [] for c in CASES}
    for _ in range(args.runs):
        for case in CASES:
            results[case].append(one(case))
            print(case, results[case][-1], flush=True)
    m = machine()
    print(f"\n## Coming back after an engine restart -- {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, `python -m bench.engine_restart`\n")
    print(f"Machine: {m.get('cpu', '?')}, {m.get('docker', '?')}; load average {load0:.1f} at "
          f"the start, {loadavg():.1f} at the end. {args.runs} runs per case, medians; "
          "seconds from the engine's start command.\n")
    print("| Case | engine answers s | Loon's container runs s | logs flow s | "
          "running / engine | logging / engine | logs flow s per run |")
    print("|---|---|---|---|---|---|---|")
    for case, runs in results.items():
        med = {k: statistics.median(getattr(r, k) for r in runs)
               for k in ("engine", "running", "logging")}
        ratio_run = statistics.median(r.running / r.engine for r in runs)
        ratio_log = statistics.median(r.logging / r.engine for r in runs)
        print(f"| {case} | {med['engine']:.2f} | {med['running']:.2f} | {med['logging']:.2f} "
              f"| {ratio_run:.2f}x | {ratio_log:.2f}x | "
              f"{', '.join(f'{r.logging:.2f}' for r in runs)} |")


if __name__ == "__main__":
    main()
