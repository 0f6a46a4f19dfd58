"""Redeploy downtime: the old way (``build.py -D`` then ``build.py -d``: the build runs while
nothing serves) against build-first (``build.py -d --replace`` after a source change), in
the same run on the same deployment.

The deployment is the versions tests' site (tests/versions/support.py): a busybox image that
serves its Loon source checkout (a git copy of the stand-in Loon) with httpd on 127.0.0.1,
whose build step sleeps BUILD_SECONDS to stand for a real build (a cached build of the real
image took about a minute, a cold one 4.5 min). For each redeploy a new commit changes the
page, and a poller requests ``/`` every POLL s:

unavailable   the longest stretch of failed requests (first failure to the next success).
reported      the downtime the supervisor measured and wrote to out.log (old container's
              stop to the new one running); the old way has none to report.
wall          the redeploy's whole wall time.

Then a redeploy whose build fails: the failed requests meanwhile (should be 0).

    .venv/bin/python -m bench.upgrade [--runs 3] [--build-seconds 5]
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import threading
import time
from pathlib import Path

from tests.versions.support import Site, commit, make_site

POLL = 0.02


class Poller:
    """Longest stretch of failed requests and how many failed."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.stop = threading.Event()
        self.failed = 0
        self.longest = 0.0
        self._since: float | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Poller:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)

    def _run(self) -> None:
        while not self.stop.is_set():
            now = time.monotonic()
            try:
                self.site.get()
                if self._since is not None:
                    self.longest = max(self.longest, now - self._since)
                    self._since = None
            except OSError:
                self.failed += 1
                self._since = self._since if self._since is not None else now
            time.sleep(POLL)


def _run(site: Site, *args: str) -> tuple[int, float, str]:
    started = time.monotonic()
    result = site.deployment.run(*args, timeout=600)
    return result.returncode, time.monotonic() - started, result.stdout + result.stderr


def _reported(site: Site) -> float | None:
    text = (site.deployment.session() / "out.log").read_text()
    found = re.findall(r"downtime: ([0-9.]+) s", text)
    return float(found[-1]) if found else None


def measure(runs: int, build_seconds: float) -> str:
    tmp = Path(tempfile.mkdtemp(prefix="bench-upgrade-"))
    site = make_site(tmp)
    rows: list[tuple[str, float, float | None, float]] = []
    try:
        commit(site.checkout, {"build.sh": f"sleep {build_seconds}\n"}, "slow build")
        code, _, out = _run(site, "-d")
        assert code == 0, out
        for i in range(runs):
            for way in ("old: -D then -d", "build first: -d --replace"):
                commit(site.checkout, {"index.html": f"{way} {i}\n"}, f"{way} {i}")
                with Poller(site) as poll:
                    if way.startswith("old"):
                        code, wall, out = _run(site, "-D")
                        assert code == 0, out
                        code, wall2, out = _run(site, "-d")
                        wall += wall2
                    else:
                        code, wall, out = _run(site, "-d", "--replace")
                    assert code == 0, out
                    deadline = time.monotonic() + 30
                    while site.get() != f"{way} {i}\n" and time.monotonic() < deadline:
                        time.sleep(POLL)
                rows.append((way, poll.longest, _reported(site) if "first" in way else None,
                             wall))
        commit(site.checkout, {"build.sh": f"sleep {build_seconds}; exit 3\n"}, "broken")
        with Poller(site) as poll:
            code, wall, out = _run(site, "-d", "--replace")
        broken = (code, poll.failed, wall)
    finally:
        site.cleanup()
    lines = ["| Redeploy | unavailable s (median) | reported downtime s (median) | wall s "
             "(median) | unavailable s per run |", "|---|---|---|---|---|"]
    medians: dict[str, float] = {}
    for way in ("old: -D then -d", "build first: -d --replace"):
        mine = [r for r in rows if r[0] == way]
        un = statistics.median(r[1] for r in mine)
        medians[way] = un
        rep = [r[2] for r in mine if r[2] is not None]
        lines.append(f"| {way} | {un:.2f} | "
                     f"{statistics.median(rep):.2f} | " if rep else f"| {way} | {un:.2f} | - | ")
        lines[-1] += (f"{statistics.median(r[3] for r in mine):.1f} | "
                      + ", ".join(f"{r[1]:.2f}" for r in mine) + " |")
    ratio = medians["build first: -d --replace"] / medians["old: -D then -d"]
    lines.append("")
    lines.append(f"Build step {build_seconds:g} s; GET / every {POLL * 1000:.0f} ms; {runs} "
                 f"runs each, alternating. Build first / old unavailability: {ratio:.2f}x.")
    lines.append(f"Broken build with --replace: exit {broken[0]}, {broken[1]} failed "
                 f"requests during its {broken[2]:.1f} s.")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--build-seconds", type=float, default=5.0)
    args = ap.parse_args()
    print(measure(args.runs, args.build_seconds))


if __name__ == "__main__":
    main()
