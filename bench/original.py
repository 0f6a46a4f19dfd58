"""Baseline (b): the original tool's approach, one ``docker exec tail -f`` subprocess per
service, each read line by line in its own thread and written line by line to a file.

Run as a separate process so that its CPU is its own: prints one JSON object with the wall
time and the CPU seconds (this process's threads plus its ``docker`` children) measured from
just before the threads start until every file holds the expected bytes.

    python bench/original.py CONTAINER OUTDIR '{"s0": 6888897, ...}' [LOG_DIR]
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path


def cpu() -> float:
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        r = resource.getrusage(who)
        total += r.ru_utime + r.ru_stime
    return total


def follow(cid: str, log_dir: str, name: str, size: int, out: Path,
           errors: list[str]) -> None:
    proc = subprocess.Popen(["docker", "exec", cid, "tail", "-n", "+1", "-f",
                             f"{log_dir}/{name}.log"], stdout=subprocess.PIPE)
    got = 0
    try:
        assert proc.stdout is not None
        with open(out / f"{name}.log", "wb") as fh:
            for line in proc.stdout:
                fh.write(line)
                got += len(line)
                if got >= size:
                    break
        if got != size:
            errors.append(f"{name}: {got} bytes, expected {size}")
    finally:
        proc.kill()
        proc.wait()


def main() -> int:
    cid, outdir, sizes_json = sys.argv[1:4]
    log_dir = sys.argv[4] if len(sys.argv) > 4 else "/var/log/loon"
    sizes: dict[str, int] = json.loads(sizes_json)
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    cpu0, t0 = cpu(), time.perf_counter()
    threads = [threading.Thread(target=follow, args=(cid, log_dir, n, s, out, errors))
               for n, s in sizes.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall, used = time.perf_counter() - t0, cpu() - cpu0
    print(json.dumps({"wall": wall, "cpu": used, "errors": errors}))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
