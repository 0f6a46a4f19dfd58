"""A deployment's state file and its lock, both beside each other in ``.build-files/``.

``state.<name>.json`` (written atomically) names the container, the session directory and
each stream's position inside its in-container file (inode + offset, with the host file's
size at that moment), kept apart from the host file size so a rotation never confuses the two.

``state.<name>.lock`` is held with ``flock`` by whichever process follows the deployment (a
foreground ``up`` or the background logger). The kernel drops the lock when that process
dies, so a stale state file or a reused pid can never pass for a live logger: ``down``,
``status`` and ``attach`` decide by the lock, and act on the pid written inside the lock file
only while the lock is held. The lock's descriptor is inherited by the background logger, so
a hand-over leaves no moment in which nobody holds it. The lock file is never unlinked
(unlinking lock files races with their next holder).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loon_supervisor.paths import build_files_dir

if TYPE_CHECKING:
    from loon_supervisor.engine.images import ImageContract
    from loon_supervisor.spec.prepare import Prepared

LOCK_FD_ENV = "LOON_LOCK_FD"


def state_path(name: str) -> Path:
    return build_files_dir() / f"state.{name}.json"


def lock_path(name: str) -> Path:
    return build_files_dir() / f"state.{name}.lock"


def write_state(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def read_state(name: str) -> dict | None:
    try:
        return json.loads(state_path(name).read_text())
    except (OSError, ValueError):
        return None


class DeploymentLock:
    """The held lock of one deployment (an open descriptor with ``flock(LOCK_EX)``)."""

    def __init__(self, name: str, fd: int) -> None:
        self.name = name
        self.fd = fd

    @classmethod
    def acquire(cls, name: str, wait: float = 0.5) -> DeploymentLock | None:
        """Take the lock, or None when a live process holds it. ``wait`` rides out a
        ``status`` that checks the lock at the same moment."""
        path = lock_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    return None
                time.sleep(0.05)
        lock = cls(name, fd)
        lock.set_owner(os.getpid())
        return lock

    @classmethod
    def inherited(cls, name: str) -> DeploymentLock | None:
        """The lock handed to this process by its parent (``LOON_LOCK_FD``), if any."""
        raw = os.environ.pop(LOCK_FD_ENV, None)
        if not raw:
            return None
        lock = cls(name, int(raw))
        os.set_inheritable(lock.fd, False)
        lock.set_owner(os.getpid())
        return lock

    def set_owner(self, pid: int) -> None:
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{pid}\n".encode(), 0)

    def release(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)  # closing our only descriptor drops the flock
            self.fd = -1


def lock_holder(name: str) -> int | None:
    """The pid of the live process holding the deployment's lock, or None if nobody does
    (0 when held but the pid is not written yet)."""
    path = lock_path(name)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raw = os.pread(fd, 32, 0).decode(errors="replace").strip()
            return int(raw) if raw.isdigit() else 0
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def wait_unlocked(name: str, timeout: float) -> bool:
    """Wait until nobody holds the lock; False on timeout."""
    deadline = time.monotonic() + timeout
    while lock_holder(name) is not None:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
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
        "positions": {},
        "crash_loop": [cfg.deploymentSettings.crashLoopRestarts,
                       cfg.deploymentSettings.crashLoopWindow],
    }


def clear_foreground_state(name: str, cid: str) -> None:
    """Forget the foreground run's state, unless another run has taken the file over."""
    state = read_state(name) or {}
    if state.get("cid") == cid and state.get("foreground_pid") == os.getpid():
        state_path(name).unlink(missing_ok=True)
