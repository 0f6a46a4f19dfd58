"""A planned whole-container restart, told to the deployment's follower.

``loon restart`` writes ``.build-files/restart.<name>.json`` (atomically, naming the
container and who asked) *before* it asks the engine to restart the container. The follower
(background logger, foreground ``up`` or ``loon service``) reads it when the container
stops: a stop that was asked for is not "the container exited on its own", so it waits for
the container to run again and re-attaches from its positions.

A file of its own rather than a field of the state file: the follower rewrites the state
file every second with its positions, and a field set by another process in between could
be overwritten. The marker is valid for one container and a bounded time only, so a stale
one (a restart that nobody followed) never turns a later real exit into a wait.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from loon_supervisor.atomic import write_text_atomic
from loon_supervisor.paths import build_file

# A marker older than this (plus the container's stop timeout) is ignored.
VALID_FOR = 120.0


def marker_path(name: str) -> Path:
    return build_file(f"restart.{name}.json")


@dataclass(frozen=True)
class RestartRequest:
    cid: str
    by: str  # who asked, for out.log: "`loon restart` (pid 123, root@host)"
    at: float  # time.time() when asked


def _who() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"`loon restart` (pid {os.getpid()}, {user}@{socket.gethostname()})"


def request(name: str, cid: str) -> RestartRequest:
    """Record that ``cid`` is about to be restarted on purpose; before the engine call."""
    req = RestartRequest(cid=cid, by=_who(), at=time.time())
    path = marker_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps({"cid": req.cid, "by": req.by, "at": req.at}))
    return req


def pending(name: str, cid: str, stop_timeout: int = 10) -> RestartRequest | None:
    """The restart asked for container ``cid``, if one was asked recently enough."""
    try:
        data = json.loads(marker_path(name).read_text())
        req = RestartRequest(cid=str(data["cid"]), by=str(data["by"]), at=float(data["at"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if req.cid != cid or time.time() - req.at > VALID_FOR + stop_timeout:
        return None
    return req


def clear(name: str, cid: str) -> None:
    """Forget the marker of ``cid`` (the follower saw the restart through, or nobody did)."""
    if pending(name, cid, stop_timeout=10**6) is not None:
        with contextlib.suppress(OSError):
            marker_path(name).unlink()
