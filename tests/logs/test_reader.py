"""loon logs: the latest session, prefixed, with -n and -f, as a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from loon_supervisor.sinks.session import new_session_dir


def loon(project: Path, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, LOON_PROJECT_ROOT=str(project))
    return subprocess.Popen([sys.executable, "-m", "loon_supervisor", "logs", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_logs_shows_latest_session_with_prefixes(tmp_path: Path) -> None:
    old = new_session_dir(tmp_path / "logs")
    (old / "db.log").write_text("old\n")
    time.sleep(1.1)
    session = new_session_dir(tmp_path / "logs")
    (session / "db.log").write_bytes(b"1\n2\n3\n")
    (session / "server.log").write_bytes(b"a\n\xffb\n")
    (session / "out.log").write_text("supervisor event\n")
    out, _ = loon(tmp_path, "-n", "2").communicate(timeout=30)
    assert out.splitlines() == ["db     | 2", "db     | 3", "server | a", "server | \ufffdb"]
    out, _ = loon(tmp_path, "server", "-n", "1").communicate(timeout=30)
    assert out.splitlines() == ["server | \ufffdb"]
    proc = loon(tmp_path, "nope")
    assert proc.wait(timeout=30) == 2 and "no log file for nope" in proc.stdout.read()


def test_logs_follow_prints_new_lines_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    session = new_session_dir(tmp_path / "logs")
    (session / "db.log").write_text("first\n")
    proc = loon(tmp_path, "-f", "-n", "5")
    assert proc.stdout is not None
    first = proc.stdout.readline()  # started and printed the history
    with open(session / "db.log", "a") as fh:
        fh.write("second\nthi")
    time.sleep(0.5)
    with open(session / "db.log", "a") as fh:
        fh.write("rd\n")
    seen = [first, proc.stdout.readline(), proc.stdout.readline()]
    proc.send_signal(2)
    out, _ = proc.communicate(timeout=30)
    assert [line.rstrip("\n") for line in seen] == ["db | first", "db | second", "db | third"]
    assert out == ""
    assert proc.returncode == 130 and "Traceback" not in out
