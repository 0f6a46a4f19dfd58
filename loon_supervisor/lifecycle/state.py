"""A deployment's state file and its lock, both beside each other in ``.build-files/``.

``state.<name>.json`` (written atomically) names the container, the session directory and
each stream's position (see :mod:`loon_supervisor.streams.cursor` for the rule of resume):
one typed :class:`DeploymentState`, read and written only here.

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
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TypedDict, Unpack

from loon_supervisor.bounded import MiB, UnboundedInput, read_bounded
from loon_supervisor.engine.images import ImageContract
from loon_supervisor.paths import build_file
from loon_supervisor.streams.cursor import Position

LOCK_FD_ENV = "LOON_LOCK_FD"
# fsync each save (a power loss then keeps the last or the one before). Only the log core's
# model test turns it off: it saves thousands of times and never loses power.
DURABLE: bool = True


def state_path(name: str) -> Path:
    return build_file(f"state.{name}.json")


def lock_path(name: str) -> Path:
    return build_file(f"state.{name}.lock")


@dataclass(frozen=True)
class DeploymentState:
    """What a running deployment's follower needs to carry on, and what ``status``,
    ``down`` and ``attach`` read. Written only through :func:`save` / :func:`update`."""

    name: str
    cid: str
    session: Path
    image: str
    services: tuple[str, ...]
    log_dir: str
    status_command: str | None
    url: str
    stop_timeout: int
    crash_loop: tuple[int, float] | None = None
    log_source: str = "exec"
    logger_pid: int | None = None
    attached: bool = False
    foreground_pid: int | None = None
    down_requested: bool = False
    log_backups: int = 10
    # deploymentSettings.logMaxMegabytes in bytes, as `up` read it (its config may not be
    # the project's config.json): what the follower bounds the staging copy with.
    log_max_bytes: int | None = None
    positions: dict[str, Position] = field(default_factory=dict)
    # "swarm": ``cid`` is :func:`swarm_cid`, the deployment is two services, and the
    # positions are the session's task files themselves (see swarm/tasklogs.py).
    orchestrator: str = "container"
    node_engines: dict[str, str] = field(default_factory=dict)  # swarmNodeEngines

    @property
    def swarm(self) -> bool:
        return self.orchestrator == "swarm"

    def contract(self) -> ImageContract:
        return ImageContract(self.image, self.services, self.log_dir, self.status_command,
                             log_backups=self.log_backups)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(session=str(self.session), services=list(self.services),
                    crash_loop=list(self.crash_loop) if self.crash_loop else None,
                    positions={k: p.to_json() for k, p in self.positions.items()})
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DeploymentState:
        loops = data.get("crash_loop")
        positions = {k: p for k, v in (data.get("positions") or {}).items()
                     if (p := Position.from_json(v)) is not None}
        return cls(
            name=str(data["name"]), cid=str(data["cid"]), session=Path(data["session"]),
            image=str(data["image"]), services=tuple(data["services"]),
            log_dir=str(data["log_dir"]), status_command=data.get("status_command"),
            url=str(data.get("url") or ""), stop_timeout=int(data.get("stop_timeout", 10)),
            crash_loop=(int(loops[0]), float(loops[1])) if loops else None,
            log_source=str(data.get("log_source") or "exec"),
            logger_pid=data.get("logger_pid"), attached=bool(data.get("attached")),
            foreground_pid=data.get("foreground_pid"),
            down_requested=bool(data.get("down_requested")),
            log_backups=int(data.get("log_backups", 10)),
            log_max_bytes=_positive(data.get("log_max_bytes")), positions=positions,
            orchestrator=str(data.get("orchestrator") or "container"),
            node_engines={str(k): str(v) for k, v in (data.get("node_engines") or {}).items()})


def swarm_cid(name: str) -> str:
    """What a swarm deployment's state names instead of a container: it has many, over time;
    never a container ID (those are hex), so no container's update can match it."""
    return f"swarm:{name}"


def _positive(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 \
        else None


def load(name: str) -> DeploymentState | None:
    """The deployment's state, or None (no file, or one this version cannot read)."""
    try:
        data = json.loads(read_bounded(state_path(name), 64 * MiB))
        return DeploymentState.from_json(data) if isinstance(data, dict) else None
    except (OSError, ValueError, KeyError, TypeError, UnboundedInput):
        return None


@contextlib.contextmanager
def _writing(name: str) -> Iterator[None]:
    """One writer of the state file at a time, across processes (``down`` sets
    ``down_requested`` while the logger saves its positions every second): every
    read-modify-write holds ``flock`` on ``state.<name>.write-lock`` for its few
    milliseconds. Separate from the deployment's lock, which a follower holds for hours."""
    path = build_file(f"state.{name}.write-lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write(state: DeploymentState) -> None:
    """Atomically and durably: a reader never sees half a file, and after a power loss the
    file is the last one saved or the one before (never empty): the temporary file is
    fsynced before the rename and the directory after it."""
    path = state_path(state.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        data = json.dumps(state.to_json(), indent=1).encode()
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if DURABLE:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if not DURABLE:
        return
    dfd = os.open(path.parent, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def save(state: DeploymentState) -> None:
    """Replace the whole state (a new run's); see :func:`_write`."""
    with _writing(state.name):
        _write(state)


class StateChanges(TypedDict, total=False):
    """The fields :func:`update` may change (all but ``name`` and ``cid``, which say whose
    state it is): a misspelt or mistyped change is a mypy error, not a TypeError in a
    logger. tests/lifecycle/test_state_changes.py checks them against the dataclass."""

    session: Path
    image: str
    services: tuple[str, ...]
    log_dir: str
    status_command: str | None
    url: str
    stop_timeout: int
    crash_loop: tuple[int, float] | None
    log_source: str
    logger_pid: int | None
    attached: bool
    foreground_pid: int | None
    down_requested: bool
    log_backups: int
    log_max_bytes: int | None
    positions: dict[str, Position]
    orchestrator: str
    node_engines: dict[str, str]


def update(name: str, cid: str, **changes: Unpack[StateChanges]) -> DeploymentState | None:
    """Change fields of the state, only while it still describes container ``cid`` (never a
    newer deployment's); the new state, or None when it did not. Read and written under
    the writers' lock: two processes' updates never undo each other."""
    with _writing(name):
        current = load(name)
        if current is None or current.cid != cid:
            return None
        new = replace(current, **changes)
        _write(new)
        return new


def forget(name: str, cid: str, *, pid: int | None = None) -> None:
    """Remove the state of container ``cid`` (and, with ``pid``, only the foreground run's
    of that process), unless another run has taken the file over."""
    with _writing(name):
        current = load(name)
        if current is None or current.cid != cid:
            return
        if pid is not None and current.foreground_pid != pid:
            return
        state_path(name).unlink(missing_ok=True)


def unreadable(name: str) -> bool:
    """A state file exists but cannot be read (damaged): say so, never guess from it."""
    return state_path(name).exists() and load(name) is None


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
