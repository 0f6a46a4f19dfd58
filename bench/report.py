"""Markdown for BENCHMARKS.md: one dated section per suite run, appended."""

from __future__ import annotations

import time
from pathlib import Path

from bench import drain, fastpath, profiles
from bench.common import median

HEADER = """\
# Benchmarks

Produced by the benchmark suite in `bench/` (one command: `bash bench/run.sh`, or
`.venv/bin/python -m bench`; see `bench/__main__.py` for options). Each run appends a dated
section with the machine it ran on; the newest section is last. How each number is measured
is described at the top of each module in `bench/`. Benchmarks are never assertions in the
test suite: a missed target is reported here, not failed.

"""

TARGETS = """\
Targets (issue 17, tightening issue 7's): logger CPU at 8 x 100 lines/s <= 0.7x the 8 docker
CLI followers with p99 <= 20 ms; throughput >= 1.5x the docker CLI baseline (a) (and above
the original tool's approach (b)); engine CPU per MB for our followers <= the CLI's; idle
logger <= 0.2 % of a core, RSS <= 60 MiB, peak RSS at teardown with files at the rotation
cap <= 100 MiB; `build.py -e` <= 0.3 s also after a config change; SIGINT to exit <= stop
timeout + 2 s; the same steady-state and teardown figures on the real Loon image. The local
fast path: throughput >= 5x the CLI, total CPU per MB <= 0.2x the CLI's, p99 <= 5 ms. The
exec-stream parts run with logSource exec; the real image runs as an operator's does (auto:
the fast path on this local engine).
"""


def _ok(flag: bool) -> str:
    return "met" if flag else "**missed**"


def _real_targets(x: dict) -> list[tuple[str, str, str]]:
    """The steady-state and teardown targets on one real-image run. The logger-vs-CLI CPU
    target is the exec source's (its figures are what issue 17 set it for); on the fast path
    the same figure is reported beside the fast path's own latency target."""
    src, rs, ld, rt = x["log_source"], x["steady"], x["loaded"], x["teardown"]
    per = ", ".join(f"{w['ratio']:.2f}" for w in ld["windows"])
    cpu = (f"{ld['ratio']:.2f}x ({ld['ours_pct']:.2f} vs {ld['cli_pct']:.2f} % of a core; "
           f"windows {per})")
    lat = (f"{ld['p99_ms']:.1f} ms (p50 {ld['p50_ms']:.1f}, max {ld['max_ms']:.1f}; "
           f"{ld['requests']} requests, {ld['missing']} lines missing)")
    limit = 20.0 if src == "exec" else 5.0
    rows = [(f"Real image, {src}: idle logger CPU, <= 0.2 %",
             f"{rs['cpu_pct']:.2f} % of a core ({rs['logged_kb_s']:.1f} KiB/s logged)",
             _ok(rs["cpu_pct"] <= 0.2)),
            (f"Real image, {src}: logger RSS, <= 60 MiB", f"{rs['rss_max']:.1f} MiB",
             _ok(rs["rss_max"] <= 60))]
    rows.append((f"Real image, {src}, {ld['rate']} requests/s to nginx: logger CPU / the "
                 "docker CLI followers' clients (a figure: issue 17's 0.7x is set at 8 x 100 "
                 "lines/s; see the note under the real-image table)", cpu, "-"))
    if src != "exec":
        cli_total = ld["cli_pct"] + ld["cli_engine_pct"] + ld["cli_container_pct"]
        rows.append((f"Real image, {src}, same windows: total CPU, the logger (no engine, no "
                     "in-container process) / the CLI's clients + what they add to the engine "
                     "and the container (a figure)",
                     f"{ld['ours_pct'] / cli_total:.2f}x ({ld['ours_pct']:.2f} vs "
                     f"{cli_total:.2f} % of a core)", "-"))
    rows += [(f"Real image, {src}: request to line in the host file, p99 <= {limit:.0f} ms, "
              "no line missing", lat, _ok(ld["p99_ms"] <= limit and ld["missing"] == 0)),
             (f"Real image, {src}: logger peak RSS through `build.py -D`, <= 100 MiB",
              f"{rt['peak_rss_mb']:.1f} MiB", _ok(rt["peak_rss_mb"] <= 100))]
    return rows


def section(r: dict) -> str:
    m = r["machine"]
    when = time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(r["started"]))
    out = [f"## {when} on {m['host']}", "",
           f"Machine: {m['cpu']}, {m['memory']} RAM, kernel {m['kernel']}, Docker "
           f"{m['docker']}, Python {m['python']}. Load average {r['load_start']:.2f} at the "
           f"start, {r['load_end']:.2f} at the end; {r['other_containers']} other containers "
           f"were running on the engine. Suite took {r['duration'] / 60:.1f} min "
           f"({r['runs']} runs per case, medians; {r['window']:.0f} s steady-state windows).",
           ""]
    targets: list[tuple[str, str, str]] = []
    tp, st, td, va = (r.get(k) for k in ("throughput", "steady", "teardown", "validation"))
    if tp:
        runs = tp["ratio_vs_cli_runs"]
        targets.append(("Throughput ours / docker CLI (a), >= 1.5x (issue 17)",
                        f"{tp['ratio_vs_cli']:.2f}x (runs {min(runs):.2f}-{max(runs):.2f}, "
                        f"n={len(runs)})", _ok(tp["ratio_vs_cli"] >= 1.5)))
        targets.append(("Throughput ours / original (b)", f"{tp['ratio_vs_original']:.2f}x",
                        _ok(tp["ratio_vs_original"] > 1.0)))
        mb = tp["bytes"] / 1e6
        ours, cli = tp["ours"]["engine_cpu"] / mb, tp["cli"]["engine_cpu"] / mb
        targets.append(("Engine CPU per MB, ours <= CLI's (issue 17)",
                        f"{1000 * ours:.2f} vs {1000 * cli:.2f} ms/MB ({ours / cli:.2f}x)",
                        _ok(ours <= cli)))
    if st:
        pr = st.get("paired")
        if pr:
            rr = pr["ratio_runs"]
            targets.append(("Logger CPU at 8 x 100 lines/s / 8 CLI followers, <= 0.7x "
                            "(issue 17)", f"{pr['ratio']:.2f}x ({pr['ours']['cpu_pct']:.1f} vs "
                            f"{pr['cli']['cpu_pct']:.1f} % of a core; runs "
                            f"{min(rr):.2f}-{max(rr):.2f}, n={len(rr)})",
                            _ok(pr["ratio"] <= 0.7)))
            targets.append(("Write-to-file p99 in those windows, <= 20 ms (issue 17)",
                            f"{pr['ours']['p99_ms']:.1f} ms (CLI {pr['cli']['p99_ms']:.1f} ms)",
                            _ok(pr["ours"]["p99_ms"] <= 20)))
        if "active" in st:
            targets.append(("Latency p99 at 100 lines/s x 8 (60 s window)",
                            f"{st['active']['p99_ms']:.1f} ms",
                            _ok(st["active"]["p99_ms"] <= 20)))
        if "quiet" in st:
            targets.append(("Idle logger CPU, <= 0.2 % (issue 17)",
                            f"{st['quiet']['cpu_pct']:.2f} % of a core",
                            _ok(st["quiet"]["cpu_pct"] <= 0.2)))
        rss = max(v["rss_max"] for k, v in st.items() if k in ("quiet", "active"))
        targets.append(("Logger RSS (max over both), <= 60 MiB (issue 17)", f"{rss:.1f} MiB",
                        _ok(rss <= 60)))
    if va:
        e = va["build.py -e"]["median"]
        targets.append(("`build.py -e` wall time (unchanged config), <= 0.3 s", f"{e:.3f} s",
                        _ok(e <= 0.3)))
        full = va.get("build.py -e, config changed (full validation)")
        if full:
            targets.append(("`build.py -e` after a config change, <= 0.3 s (issue 17)",
                            f"{full['median']:.3f} s", _ok(full["median"] <= 0.3)))
    if td:
        for kind, v in td.items():
            if kind == "capped":
                targets.append(("Peak RSS, teardown with 8 files at the 50 MB rotation cap, "
                                "<= 100 MiB (issue 17)",
                                f"{v['peak_rss_mb']:.1f} MiB ({v['collected_mb']:.0f} MiB "
                                "collected after the stop)", _ok(v["peak_rss_mb"] <= 100)))
                continue
            limit = v["stop_timeout"] + 2
            targets.append((f"SIGINT to exit, {kind} (limit {limit} s)",
                            f"max {v['max']:.2f} s", _ok(v["max"] <= limit)))
    rl = r.get("real")
    for run in ([rl] + ([rl["exec"]] if "exec" in rl else [])) if rl else []:
        targets += _real_targets(run)
    fp = r.get("fastpath")
    if fp:
        for target, measured, ok in fastpath.verdicts(fp):
            if ok is not None:
                targets.append((f"Fast path (hostdir): {target} (issue 17)", measured, _ok(ok)))
    dr = r.get("drain")
    if dr:
        targets += drain.verdicts(dr)
    for part, why in r.get("failed", {}).items():
        targets.append((f"part `{part}` did not complete", why[:300], "**not measured**"))
    if targets:
        out += ["| Target | Measured | |", "|---|---|---|"]
        out += [f"| {a} | {b} | {c} |" for a, b, c in targets]
        out.append("")

    if tp:
        mb = tp["bytes"] / 1e6
        per = tp["lines"] // 8
        out += [f"### Throughput: 8 services x {per:,} lines ({mb:.1f} MB) at once", "",
                "| Method | MB/s (median) | wall s | client CPU-s | engine CPU-s | "
                "container CPU-s | ours / method | MB/s per run |",
                "|---|---|---|---|---|---|---|---|"]
        names = {"ours": "ours: supervisor (`build.py`)",
                 "cli": "(a) 8 x `docker exec C cat f > file`",
                 "original": "(b) original: thread + `docker exec tail -f` per service"}
        for k, label in names.items():
            v = tp[k]
            ratio = "1.00x" if k == "ours" else f"{tp[f'ratio_vs_{k}']:.2f}x"
            runs = ", ".join(f"{x:.1f}" for x in v["mbps_runs"])
            out.append(f"| {label} | {v['mbps']:.1f} | {v['wall']:.2f} | {v['cpu']:.2f} | "
                       f"{v['engine_cpu']:.2f} | {v['container_cpu']:.2f} | {ratio} | {runs} |")
        if "release" in tp:
            out += ["", f"Of ours' wall time, {tp['release']:.2f} s (median) is the `docker exec` "
                    "that releases the services (a CLI start-up, paid before any byte moves)."]
        out += ["", "Ratios are per run (same run, same container, same files), then the "
                "median. Every output file of every method and run was byte-identical to the "
                "expected content (sha256). Client CPU: ours = the supervisor process; (a) = "
                "the 8 docker CLI processes; (b) = its Python process with its CLI children. "
                "Engine CPU (dockerd + containerd + the container's shim) is shared with any "
                "other engine user, so it is noisy on a busy machine.", ""]
    if st:
        out += ["### Background logger: latency and overhead", "",
                "| Services | logger CPU % of a core | RSS max / end MiB | engine CPU % | "
                "container CPU % | lines | p50 ms | p99 ms | max ms |",
                "|---|---|---|---|---|---|---|---|---|"]
        for kind, label in (("quiet", "8 quiet"), ("active", "8 x 100 lines/s")):
            if kind not in st:
                continue
            v = st[kind]
            lat = (f"{v['lines']} ({v['gap_count']} gaps) | {v['p50_ms']:.1f} | "
                   f"{v['p99_ms']:.1f} | {v['max_ms']:.1f}" if "p50_ms" in v
                   else "- | - | - | -")
            out.append(f"| {label} | {v['cpu_pct']:.2f} | {v['rss_max']:.1f} / "
                       f"{v['rss_end']:.1f} | {v['engine_cpu_pct']:.1f} | "
                       f"{v['container_cpu_pct']:.1f} | {lat} |")
        if "paired" in st:
            pr = st["paired"]
            out += ["", f"Paired control ({len(pr.get('runs', [])) or 1} windows of "
                    f"{pr['seconds']:.0f} s right after, both at once on the same container and "
                    "lines; medians; CPU over each window from /proc for both, the CLI's over "
                    "its 8 processes; ours / CLI per run: "
                    + ", ".join(f"{x:.2f}" for x in pr.get("ratio_runs", [])) + "):", "",
                    "| Follower | client CPU % of a core | lines | p50 ms | p99 ms | max ms |",
                    "|---|---|---|---|---|---|"]
            for k, label in (("ours", "ours: background logger"),
                             ("cli", "docker CLI: 8 x `docker exec C tail -c +1 -F -s 0.05 f > file`")):
                v = pr[k]
                out.append(f"| {label} | {v['cpu_pct']:.1f} | {v['lines']} ({v['gap_count']} gaps) | "
                           f"{v['p50_ms']:.1f} | {v['p99_ms']:.1f} | {v['max_ms']:.1f} |")
        out += ["", "Latency: write time (inside each line) to the line being readable in "
                "the host file, for every line written in the window.", ""]
    sw = r.get("sweep")
    if sw:
        out += ["### Coalescing: hand-over delay vs CPU vs latency (8 x 100 lines/s)", "",
                "Each row: a fresh background logger started with LOON_COALESCE_MS, then "
                "paired windows beside the 8 CLI followers (medians).", "",
                "| delay ms | ours CPU % | CLI CPU % | ours / CLI | ours p50 ms | ours p99 ms | "
                "CLI p99 ms | ours max ms | load |", "|---|---|---|---|---|---|---|---|---|"]
        for row in sw:
            o, c = row["ours"], row["cli"]
            out.append(f"| {row['delay_ms']:g} | {o['cpu_pct']:.1f} | {c['cpu_pct']:.1f} | "
                       f"{row['ratio']:.2f}x | {o['p50_ms']:.1f} | {o['p99_ms']:.1f} | "
                       f"{c['p99_ms']:.1f} | {o['max_ms']:.1f} | {row['load']:.2f} |")
        out.append("")
    if td:
        out += ["### Teardown: SIGINT to exit, every file complete", "",
                "| Case | stop timeout s | median s | max s | runs s |", "|---|---|---|---|---|"]
        for kind, v in td.items():
            if kind == "capped":
                continue
            runs = ", ".join(f"{x:.2f}" for x in v["runs"])
            out.append(f"| {kind} | {v['stop_timeout']} | {v['median']:.2f} | "
                       f"{v['max']:.2f} | {runs} |")
        c = td.get("capped")
        if c:
            out += ["", "Rotation cap: 8 services wrote 50 MiB each, SIGINT once every file was "
                    "at the cap: "
                    f"{c['host_mb']:.0f} MiB reached the host files, {c['collected_mb']:.0f} "
                    "MiB of them through the final collection from the stopped container; "
                    f"the supervisor's peak RSS over its life {c['peak_rss_mb']:.1f} MiB; "
                    f"SIGINT to exit {c['seconds']:.2f} s."]
        out.append("")
    if rl:
        runs = [rl] + ([rl["exec"]] if "exec" in rl else [])
        out += ["### Real Loon image (docker/, production, stand-in server)", "",
                f"Services {', '.join(rl['teardown']['services'])}. Deployed with `build.py -d`, "
                "first as shipped (logSource auto: the fast path on this local engine), then "
                "with logSource exec (what a remote engine gets). Each: an idle window once "
                f"`loon status` said every service runs; then {rl['loaded']['rate']} "
                "requests/s to nginx (one access-log line each) in windows beside the docker "
                "CLI followers (one `docker exec C tail -n 0 -F` per service); then "
                "`build.py -D` (bench/real_image.py).", "",
                "| Figure | " + " | ".join(x["log_source"] for x in runs) + " |",
                "|---|" + "---|" * len(runs)]
        rows = [
            ("`build.py -d` wall s (image cached)", lambda x: f"{x['build_seconds']:.0f}"),
            ("idle window s", lambda x: f"{x['steady']['window']:.0f}"),
            ("idle: logger CPU % of a core", lambda x: f"{x['steady']['cpu_pct']:.2f}"),
            ("idle: logger RSS max / end MiB",
             lambda x: f"{x['steady']['rss_max']:.1f} / {x['steady']['rss_end']:.1f}"),
            ("idle: engine CPU % (dockerd + containerd + shim)",
             lambda x: f"{x['steady']['engine_cpu_pct']:.1f}"),
            ("idle: container CPU % (the services' own idle load)",
             lambda x: f"{x['steady']['container_cpu_pct']:.1f}"),
            ("loaded: logger / CLI followers CPU % of a core",
             lambda x: f"{x['loaded']['ours_pct']:.2f} / {x['loaded']['cli_pct']:.2f}"),
            ("loaded, without the CLI: logger / engine / container CPU %",
             lambda x: f"{x['loaded']['alone']['ours']:.2f} / "
                       f"{x['loaded']['alone']['engine']:.1f} / "
                       f"{x['loaded']['alone']['container']:.1f}"),
            ("loaded: what the CLI followers add to the engine / the container, CPU %",
             lambda x: f"{x['loaded']['cli_engine_pct']:.1f} / "
                       f"{x['loaded']['cli_container_pct']:.1f}"),
            ("loaded: request to host file p50 / p99 / max ms",
             lambda x: f"{x['loaded']['p50_ms']:.1f} / {x['loaded']['p99_ms']:.1f} / "
                       f"{x['loaded']['max_ms']:.1f}"),
            ("`build.py -D` wall s", lambda x: f"{x['teardown']['seconds']:.1f}"),
            ("logger peak RSS up to its exit MiB", lambda x: f"{x['teardown']['peak_rss_mb']:.1f}"),
            ("host log files after the teardown MiB", lambda x: f"{x['teardown']['host_mb']:.1f}"),
        ]
        for label, fn in rows:
            out.append(f"| {label} | " + " | ".join(fn(x) for x in runs) + " |")
        out += ["", "Note on the fast path's loaded CPU: with one busy service whose lines come "
                "further apart than the hub's 3 ms tick, the logger wakes once per line, as "
                "the CLI's clients do, and a wake-up costs Python more than Go; waiting for a "
                "batch would break the fast path's 5 ms p99. The CLI's figure is its client "
                "processes only: what its followers add to the engine (dockerd, containerd, "
                "the shim) and to the container (a `tail` per service) is the row above, and "
                "the fast path costs neither. On exec the 15 ms coalescing batches that "
                "service's lines, but a single stream cannot share its ticks with others "
                "(the 8 x 100 case can): what is left per tick is mostly the wake-up itself "
                "(py-spy finds under a fifth of the logger's CPU in Python code).", ""]
    if fp:
        out += ["### Local fast path (logSource hostdir) against the docker CLI", "",
                "Throughput and CPU: the same 8 x 1M-line case as above, released through FIFOs "
                "in the bind-mounted log directory (no exec in our window), then the 8 CLI "
                "`docker exec cat` in the same container; total CPU = ours or the CLI clients "
                "+ dockerd, containerd, the shim + the container's processes, per MB. Latency: "
                f"a hostdir and an exec deployment at 8 x 100 lines/s in {fp['windows']} "
                f"alternating {fp['window']:.0f} s windows each, the other one paused.", "",
                "| Figure | Measured |", "|---|---|"]
        for target, measured, ok in fastpath.verdicts(fp):
            if ok is None:  # the targets are in the table at the top
                out.append(f"| {target} | {measured} |")
        t = fp.get("throughput")
        if t:
            o = median([x["ours"]["cpu"] for x in t["runs"]])
            oe = median([x["ours"]["engine_cpu"] for x in t["runs"]])
            oc = median([x["ours"]["container_cpu"] for x in t["runs"]])
            c = median([x["cli"]["cpu"] for x in t["runs"]])
            ce = median([x["cli"]["engine_cpu"] for x in t["runs"]])
            cc = median([x["cli"]["container_cpu"] for x in t["runs"]])
            out.append(f"| CPU-s, ours / engine / container (medians) | {o:.2f} / {oe:.2f} / "
                       f"{oc:.2f}; CLI {c:.2f} / {ce:.2f} / {cc:.2f} |")
        c = fp.get("copy")
        if c:
            out.append(f"| file to file, 55 MB: CPU per MB | pread + write "
                       f"{1000 * c['pread_write']:.3f} ms, copy_file_range "
                       f"{1000 * c['copy_file_range']:.3f} ms |")
        out.append("")
    if dr:
        out += ["### Teardown drain (issue 23): current code against a baseline in the same "
                "run", "", drain.table(dr), ""]
    pf = r.get("profile")
    if pf:
        out += ["### Profiles (py-spy --nonblocking, after the measured parts)", ""]
        out += profiles.lines(pf)
        out.append("")
    if va:
        out += ["### Validation: `build.py -e` on config.example.json", "",
                "| Command | median s | min s |", "|---|---|---|"]
        for name, v in va.items():
            out.append(f"| `{name}` | {v['median']:.3f} | {v['min']:.3f} |")
        out.append("")
    out.append(TARGETS)
    return "\n".join(out)


def append(path: Path, text: str) -> None:
    existing = path.read_text() if path.exists() else HEADER
    if not existing.endswith("\n\n"):
        existing = existing.rstrip("\n") + "\n\n"
    path.write_text(existing + text.rstrip("\n") + "\n")
