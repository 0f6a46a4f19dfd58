"""Crash-loop detection from supervisorctl-style status lines (pure logic)."""

from __future__ import annotations

from pathlib import Path

from loon_supervisor.lifecycle.crashloop import (
    CrashLoopDetector,
    CrashLoopPolicy,
    CrashLoopWatch,
    parse_run,
    read_verdicts,
)


def line(pid: int | None, uptime: str = "0:00:05", state: str = "RUNNING") -> str:
    return f"server {state} pid {pid}, uptime {uptime}" if pid else f"server {state}"


def test_parse_run() -> None:
    assert parse_run("server RUNNING   pid 42, uptime 1 day, 2:03:04").pid == 42
    assert parse_run("server RUNNING   pid 42, uptime 1 day, 2:03:04").uptime == 93784
    assert parse_run("celery STARTING").pid is None
    assert parse_run("x BACKOFF Exited too quickly").uptime is None


def test_three_new_pids_within_the_window_is_a_loop() -> None:
    d = CrashLoopDetector(CrashLoopPolicy(restarts=3, window=60))
    assert d.observe("server", line(10), 0) is None
    assert d.observe("server", line(None, state="STARTING"), 11) is None
    assert d.observe("server", line(11), 12) is None
    assert d.observe("server", line(12), 24) is None
    assert d.observe("server", line(12, "0:00:09"), 33) is None
    assert d.observe("server", line(13), 36) == "started"
    assert d.looping() == ["server"] and d.restarts("server") == 3
    assert d.observe("server", line(13, "0:01:00"), 90) is None
    assert d.observe("server", line(13, "0:02:00"), 150) == "ended"
    assert d.looping() == []


def test_a_stable_service_and_slow_restarts_are_not_loops() -> None:
    d = CrashLoopDetector(CrashLoopPolicy(restarts=3, window=60))
    for t in range(0, 600, 2):
        assert d.observe("redis", f"redis RUNNING pid 7, uptime 0:{t // 60:02d}:{t % 60:02d}",
                         t) is None
    for i, t in enumerate(range(0, 400, 45)):
        assert d.observe("server", line(100 + i), t) is None


def test_pid_reuse_is_seen_through_the_uptime() -> None:
    d = CrashLoopDetector(CrashLoopPolicy(restarts=2, window=60))
    assert d.observe("s", line(5, "0:00:08"), 0) is None
    assert d.observe("s", line(5, "0:00:02"), 4) is None
    assert d.observe("s", line(5, "0:00:01"), 6) == "started"


def test_watch_reports_loudly_and_writes_the_verdict(tmp_path: Path) -> None:
    said: list[str] = []
    (tmp_path / "server.log").write_text("".join(f"l{i}\n" for i in range(30)))
    w = CrashLoopWatch(tmp_path, said.append, lambda p: p.read_text().splitlines()[-20:],
                       CrashLoopPolicy(restarts=1, window=60))
    w.observe("server", line(1))
    assert read_verdicts(tmp_path) == {}
    w.observe("server", line(2))
    assert "CRASH LOOP: service server restarted 1 times" in said[0]
    assert said[1:] == [f"  l{i}" for i in range(10, 30)]
    assert read_verdicts(tmp_path) == {"server": 1}
    assert read_verdicts(None) == {}
