"""Profile the background logger under the steady 8 x 100 lines/s load with py-spy.

    .venv/bin/pip install py-spy
    .venv/bin/python -m bench.profile_logger [SECONDS] [--period 0.01] [--out DIR]
        [--coalesce-ms MS]

Writes py-spy's collapsed stacks (``logger.folded``, all threads, on-CPU samples only) and
prints the logger's CPU over the window plus the top self and inclusive frames.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import cleanup, proc_cpu, remove_image, say, state_of, writer_deployment


def summarise(folded: Path, top: int = 25) -> str:
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        count = int(n)
        total += count
        frames = stack.split(";")
        own[frames[-1]] += count
        for f in set(frames):
            incl[f] += count
    out = [f"{total} samples"]
    out.append("-- self --")
    out += [f"{100 * c / total:5.1f}%  {f}" for f, c in own.most_common(top)]
    out.append("-- inclusive --")
    out += [f"{100 * c / total:5.1f}%  {f}" for f, c in incl.most_common(top)]
    return "\n".join(out)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("seconds", type=float, nargs="?", default=20)
    p.add_argument("--period", type=float, default=0.01)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--coalesce-ms", default=None, help="LOON_COALESCE_MS for the logger")
    ns = p.parse_args()
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists():
        print("py-spy is not installed: .venv/bin/pip install py-spy", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="loon-prof-"))
    out = ns.out or work
    out.mkdir(parents=True, exist_ok=True)
    d = writer_deployment(work / "d", ns.period)
    try:
        extra = {"LOON_COALESCE_MS": ns.coalesce_ms} if ns.coalesce_ms is not None else {}
        res = d.run("-d", timeout=600, **extra)
        if res.returncode != 0:
            raise RuntimeError(res.stdout + res.stderr)
        pid = int(state_of(d)["logger_pid"])
        time.sleep(3)
        cpu0, t0 = proc_cpu(pid), time.perf_counter()
        folded = out / "logger.folded"
        subprocess.run([str(spy), "record", "--pid", str(pid), "--duration", str(int(ns.seconds)),
                        "--rate", "200", "--threads", "--gil", "--format", "raw",
                        "--output", str(folded)], check=True, capture_output=True)
        cpu = proc_cpu(pid) - cpu0
        wall = time.perf_counter() - t0
        say(f"logger {pid}: {100 * cpu / wall:.1f} % of a core over {wall:.1f} s "
            f"(8 services, a line every {ns.period} s each)")
        print(summarise(folded))
        print(f"collapsed stacks: {folded}")
    finally:
        d.run("-D", timeout=120)
        cleanup(d)
        remove_image(f"loon-test:{d.name}")
        shutil.rmtree(work / "d", ignore_errors=True)
        if ns.out is not None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
