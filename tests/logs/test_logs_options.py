"""`loon logs` compose habits on real session files: --tail/-n all, --no-color,
--no-log-prefix, and picking a deployment's session with --name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def _session(root: Path, name: str, lines: dict[str, str], mention: str = "") -> Path:
    s = root / "logs" / name
    s.mkdir(parents=True)
    for svc, text in lines.items():
        (s / f"{svc}.log").write_text(text)
    (s / "out.log").write_text(f"2026-01-01 00:00:00 deployment {mention}\n")
    return s


def _logs(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOON_")}
    env["LOON_PROJECT_ROOT"] = str(root)
    return subprocess.run([sys.executable, "-m", "loon_supervisor", "logs", *args], cwd=root,
                          env=env, capture_output=True, text=True, timeout=60)


def test_tail_prefix_colour_and_deployment(tmp_path: Path) -> None:
    _session(tmp_path, "logs_2026-01-01_00-00-00", {"web": "old 1\nold 2\n"}, "first")
    latest = _session(tmp_path, "logs_2026-01-02_00-00-00",
                      {"web": "".join(f"w{i}\n" for i in range(30)), "db": "d1\n"}, "second")
    (tmp_path / "logs" / "latest").symlink_to(latest.name)

    r = _logs(tmp_path, "web", "--tail", "all", "--no-log-prefix")
    assert r.returncode == 0 and r.stdout == "".join(f"w{i}\n" for i in range(30))
    r = _logs(tmp_path, "web", "-n", "2")
    assert r.stdout == "web | w28\nweb | w29\n" and "\x1b[" not in r.stdout
    r = _logs(tmp_path, "-n", "1", "--no-color")
    assert r.stdout == "db  | d1\nweb | w29\n"

    # A named deployment reads the session its state names, not the newest one.
    state = tmp_path / ".build-files" / "state.other.json"
    state.parent.mkdir()
    state.write_text(json.dumps({
        "name": "other", "cid": "c" * 64, "image": "loon:1", "services": ["web"],
        "log_dir": "/var/log/loon", "status_command": None, "url": "", "stop_timeout": 10,
        "session": str(tmp_path / "logs" / "logs_2026-01-01_00-00-00")}))
    r = _logs(tmp_path, "--name", "other", "--no-log-prefix", "web")
    assert r.stdout == "old 1\nold 2\n"
