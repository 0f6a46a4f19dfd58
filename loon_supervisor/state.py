"""A run's state file: ``.build-files/state.<name>.json``, written atomically, naming the
container, the session directory and who writes it: the background logger's pid, or the
foreground ``up``'s pid (``foreground_pid``) so ``status`` and ``logs`` see that run too."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loon_supervisor.paths import build_files_dir

if TYPE_CHECKING:
    from loon_supervisor.engine.images import ImageContract
    from loon_supervisor.prepare import Prepared


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


def run_state(prepared: Prepared, contract: ImageContract, cid: str, session: Path,
              *, foreground_pid: int | None = None) -> dict[str, Any]:
    """The state of one run, as both the foreground ``up`` and ``up -d`` write it."""
    cfg = prepared.config
    return {
        "name": cfg.deploymentSettings.containerName, "cid": cid, "session": str(session),
        "image": contract.image, "services": list(contract.services),
        "log_dir": contract.log_dir, "status_command": contract.status_command,
        "url": cfg.url, "stop_timeout": cfg.deploymentSettings.stopTimeout,
        "logger_pid": None, "attached": False, "foreground_pid": foreground_pid,
    }


def clear_foreground_state(name: str, cid: str) -> None:
    """Forget the foreground run's state, unless another run has taken the file over."""
    state = read_state(name) or {}
    if state.get("cid") == cid and state.get("foreground_pid") == os.getpid():
        state_path(name).unlink(missing_ok=True)
