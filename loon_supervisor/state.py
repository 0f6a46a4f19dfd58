"""The background logger's state file: ``.build-files/state.<name>.json``, written
atomically, naming the container, the session directory and the logger's pid."""

from __future__ import annotations

import json
import os
from pathlib import Path

from loon_supervisor.paths import build_files_dir


def state_path(name: str) -> Path:
    return build_files_dir() / f"state.{name}.json"


def write_state(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def read_state(name: str) -> dict | None:
    try:
        return json.loads(state_path(name).read_text())
    except (OSError, ValueError):
        return None


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours counts as gone
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ")[-1][:1] != "Z"
    except OSError:
        return True
