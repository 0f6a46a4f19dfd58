"""Teardown drain (issue 23, defect 5) and the exec-stream changes beside it, measured against
a baseline checkout of the code before them, in the same run on the same machine.

The baseline is ``git archive BASELINE`` of this repository (main before the fixes) unpacked
into the work directory; its ``build.py`` and its background logger run with
``PYTHONPATH=<checkout>`` so they import the baseline's package, not this one.

teardown  SIGINT to a foreground ``build.py`` until it exits, on 8 perl writers that stop at
          once on TERM (stopTimeout 10), on both log sources, for the current code and the
          baseline, runs interleaved. Every file must be complete (bench/teardown.py).
down      ``build.py -d``, 3 s of writing, then ``build.py -D`` until it returns; the same
          matrix.
steady    per source, two detached deployments at once (one per code) of 8 writers at 100
          lines/s, watched over the same windows: each logger's CPU (% of a core) and its
          lines' p50/p99 latency (write time -> host file). Ratios current / baseline per
          window; medians reported. Both run side by side, so a machine stall hits both.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.common import (
    ROOT,
    SERVICES,
    check_source,
    cleanup,
    median,
    out_log_has,
    proc_cpu,
    remove_image,
    say,
    state_of,
    wait_for,
    writer_deployment,
)
from bench.steady import WARMUP, LatencyWatcher, _lat
from bench.teardown import RUN_FOR, check_complete
from tests.engine_helpers import HOOKS, Deployment

BASELINE = "5e29567"  # main before issue 23's drain and exec-stream fixes
SOURCES = ("exec", "hostdir")
DRAINED = re.compile(r"the log followers read their files to the end ([0-9.]+)s after the stop")


class Code:
    """One version of the supervisor: its build.py and the package its processes import."""

    def __init__(self, label: str, root: Path) -> None:
        self.label, self.root = label, root

    def env(self, d: Deployment) -> dict[str, str]:
        return d.env(PYTHONPATH=f"{self.root}:{HOOKS}")

    def cmd(self, d: Deployment, *args: str) -> list[str]:
        return [sys.executable, str(self.root / "build.py"), "--config-file", str(d.config),
                *args]

    def run(self, d: Deployment, *args: str, timeout: float = 600
            ) -> subprocess.CompletedProcess[str]:
        for attempt in range(3):
            res = subprocess.run(self.cmd(d, *args), cwd=d.root, env=self.env(d),
                                 capture_output=True, text=True, timeout=timeout)
            if res.returncode == 0 or not _engine_flake(res.stdout + res.stderr) or attempt:
                return res
            say(f"{self.label}: the shared engine lost a layer during the build; again")
        return res

    def start(self, d: Deployment) -> subprocess.Popen[str]:
        for attempt in range(2):
            proc = subprocess.Popen(self.cmd(d), cwd=d.root, env=self.env(d), text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            d.procs.append(proc)
            wait_for(lambda p=proc: out_log_has(d, "Loon is up") or p.poll() is not None, 600,
                     "the deployment to come up")
            if proc.poll() is None:
                return proc
            said = proc.stdout.read() if proc.stdout else ""
            if attempt or not _engine_flake(said):
                raise RuntimeError(f"{self.label}: build.py exited {proc.returncode}: {said}")
            say(f"{self.label}: the shared engine lost a layer during the build; again")
        raise AssertionError("unreachable")


def _engine_flake(said: str) -> bool:
    """A build that failed because another user of the shared engine removed an image
    layer under it (seen as 'unable to find image "sha256:...'): not ours, worth a retry."""
    return "build failed" in said and "unable to find image" in said


def baseline(work: Path, rev: str = BASELINE) -> Code:
    dest = work / f"baseline-{rev}"
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return Code(f"baseline {rev}", dest)


def drained_after(d: Deployment) -> float | None:
    """What out.log says about the drain (only the current code says it)."""
    text = (d.session() / "out.log").read_text(errors="replace")
    m = DRAINED.search(text)
    return float(m.group(1)) if m else None


def sigint_one(work: Path, code: Code, source: str) -> dict:
    d = writer_deployment(work, 0.01, stop_timeout=10, source=source)
    try:
        proc = code.start(d)
        check_source(d, source)
        time.sleep(RUN_FOR)
        t0 = time.perf_counter()
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=120)
        took = time.perf_counter() - t0
        if proc.returncode != 130:
            raise RuntimeError(f"{code.label} {source}: exit {proc.returncode}, expected 130")
        check_complete(d.session(), ())
        return {"seconds": took, "drained_after": drained_after(d)}
    finally:
        cleanup(d)
        remove_image(f"loon-test:{d.name}")


def down_one(work: Path, code: Code, source: str) -> dict:
    d = writer_deployment(work, 0.01, stop_timeout=10, source=source)
    try:
        res = code.run(d, "-d")
        if res.returncode != 0:
            raise RuntimeError(f"{code.label}: build.py -d exited {res.returncode}: "
                               f"{res.stdout}{res.stderr}")
        check_source(d, source)
        time.sleep(RUN_FOR)
        t0 = time.perf_counter()
        res = code.run(d, "-D", timeout=120)
        took = time.perf_counter() - t0
        if res.returncode != 0:
            raise RuntimeError(f"{code.label}: build.py -D exited {res.returncode}")
        check_complete(d.session(), ())
        return {"seconds": took, "drained_after": drained_after(d)}
    finally:
        cleanup(d)
        remove_image(f"loon-test:{d.name}")


def teardown(work: Path, codes: list[Code], runs: int) -> dict:
    out: dict = {}
    for kind, one in (("sigint", sigint_one), ("down", down_one)):
        for source in SOURCES:
            for r in range(runs):
                for code in codes:  # interleaved: both see the same machine
                    res = one(work / f"{kind}-{source}-{code.label.split()[0]}-{r}", code,
                              source)
                    row = out.setdefault(kind, {}).setdefault(source, {}).setdefault(
                        code.label, {"runs": [], "drained_after": []})
                    row["runs"].append(res["seconds"])
                    if res["drained_after"] is not None:
                        row["drained_after"].append(res["drained_after"])
                    say(f"drain {kind} {source} {code.label} run {r + 1}/{runs}: "
                        f"{res['seconds']:.2f} s"
                        + (f" (followers ended {res['drained_after']:.2f} s after the stop)"
                           if res["drained_after"] is not None else ""))
            for row in out[kind][source].values():
                row["median"] = median(row["runs"])
    return out


def steady(work: Path, codes: list[Code], window: float, runs: int) -> dict:
    """Both codes side by side, per source: logger CPU and latency, ratios per window."""
    out: dict = {}
    for source in SOURCES:
        ds = [writer_deployment(work / f"steady-{source}-{i}", 0.01, source=source)
              for i in range(len(codes))]
        try:
            for code, d in zip(codes, ds, strict=True):
                res = code.run(d, "-d")
                if res.returncode != 0:
                    raise RuntimeError(f"{code.label}: build.py -d exited {res.returncode}: "
                                       f"{res.stdout}{res.stderr}")
                check_source(d, source)
            pids = [int(state_of(d)["logger_pid"]) for d in ds]
            rows: list[list[dict]] = []
            for _ in range(runs):
                watchers = [LatencyWatcher(Path(state_of(d)["session"])) for d in ds]
                for w in watchers:
                    w.start()
                time.sleep(WARMUP)
                start = time.time()
                cpu0, t0 = [proc_cpu(p) for p in pids], time.perf_counter()
                for w in watchers:
                    w.window = (start, start + window)
                time.sleep(window)
                took = time.perf_counter() - t0
                cpu = [100 * (proc_cpu(p) - c) / took for p, c in zip(pids, cpu0, strict=True)]
                time.sleep(1.0)
                for w in watchers:
                    w.stop_event.set()
                    w.join()
                rows.append([{**_lat(w), "cpu_pct": c} for w, c in zip(watchers, cpu,
                                                                       strict=True)])
            res_src: dict = {"windows": rows}
            for k in ("cpu_pct", "p50_ms", "p99_ms"):
                for i, code in enumerate(codes):
                    res_src.setdefault(code.label, {})[k] = median([r[i][k] for r in rows])
                res_src.setdefault("ratio", {})[k] = median([r[0][k] / r[1][k] for r in rows
                                                            if r[1][k]])
            for i, code in enumerate(codes):
                res_src[code.label]["gaps"] = sum(r[i]["gap_count"] for r in rows)
                res_src[code.label]["lines"] = sum(r[i]["lines"] for r in rows)
            out[source] = res_src
            rt = res_src["ratio"]
            say(f"drain steady {source}: current/baseline cpu {rt['cpu_pct']:.2f}x, "
                f"p50 {rt['p50_ms']:.2f}x, p99 {rt['p99_ms']:.2f}x")
        finally:
            for code, d in zip(codes, ds, strict=True):
                try:
                    code.run(d, "-D", timeout=120)
                except Exception:  # noqa: BLE001
                    pass
                cleanup(d)
                remove_image(f"loon-test:{d.name}")
    return out


def bench(work: Path, runs: int, window: float = 20.0, rev: str = BASELINE) -> dict:
    codes = [Code("current", ROOT), baseline(work, rev)]
    return {"baseline": rev, "services": len(SERVICES),
            "teardown": teardown(work, codes, runs),
            "steady": steady(work, codes, window, runs)}


def table(r: dict) -> str:
    """The markdown of one drain result."""
    cur, base = "current", f"baseline {r['baseline']}"
    lines = [f"Baseline: `git archive {r['baseline']}` run beside the current code in the same "
             f"run. {r['services']} perl writers at 100 lines/s each, stopTimeout 10, "
             "services stop at once on TERM. Medians.", "",
             "| teardown | source | current s | baseline s | ratio | followers ended after "
             "the stop (current, median s) |", "|---|---|---|---|---|---|"]
    names = {"sigint": "SIGINT -> exit (foreground)", "down": "`build.py -D` (detached)"}
    for kind in ("sigint", "down"):
        for source, rows in r["teardown"].get(kind, {}).items():
            c, b = rows[cur], rows[base]
            drained = median(c["drained_after"]) if c["drained_after"] else float("nan")
            lines.append(f"| {names[kind]} | {source} | {c['median']:.2f} | {b['median']:.2f} "
                         f"| {c['median'] / b['median']:.2f}x | {drained:.2f} |")
    lines += ["", "| steady state | source | current | baseline | ratio current/baseline "
              "(median of paired windows) |", "|---|---|---|---|---|"]
    for source, s in r["steady"].items():
        for k, label in (("cpu_pct", "logger CPU % of a core"), ("p50_ms", "p50 latency ms"),
                         ("p99_ms", "p99 latency ms")):
            lines.append(f"| {label} | {source} | {s[cur][k]:.2f} | {s[base][k]:.2f} "
                         f"| {s['ratio'][k]:.2f}x |")
        lines.append(f"| lines / gaps | {source} | {s[cur]['lines']} / {s[cur]['gaps']} | "
                     f"{s[base]['lines']} / {s[base]['gaps']} | |")
    return "\n".join(lines)


def verdicts(r: dict) -> list[tuple[str, str, str]]:
    """(target, measured, verdict) rows for the suite's target table."""
    rows: list[tuple[str, str, str]] = []
    cur, base = "current", f"baseline {r['baseline']}"
    for kind, what in (("sigint", "SIGINT -> exit"), ("down", "`build.py -D`")):
        for source, v in r["teardown"].get(kind, {}).items():
            after = v[cur]["drained_after"]
            worst = max(after) if after else float("nan")
            ok = bool(after) and worst <= 1.0 and len(after) == len(v[cur]["runs"])
            rows.append((f"{what}, {source}: followers end <= 1 s after the stop (issue 23)",
                         f"max {worst:.2f} s; {what} {v[cur]['median']:.2f} s vs baseline "
                         f"{v[base]['median']:.2f} s", "met" if ok else "**missed**"))
    for source, s in r["steady"].items():
        rt = s["ratio"]
        ok = rt["cpu_pct"] <= 1.1 and rt["p99_ms"] <= 1.1 and s[cur]["gaps"] == 0
        rows.append((f"Steady state, {source}: logger CPU and p99 not worse than the baseline "
                     "(current / baseline <= 1.1x, issue 23)",
                     f"CPU {rt['cpu_pct']:.2f}x, p50 {rt['p50_ms']:.2f}x, p99 "
                     f"{rt['p99_ms']:.2f}x", "met" if ok else "**missed**"))
    return rows
