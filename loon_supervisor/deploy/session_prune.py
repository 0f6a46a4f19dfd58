"""Pruning a deploy's session logs with its record.

Each deploy's ``loon up -d`` writes a session directory (``logs/logs_<time>/``) beside the
project's other logs and says where in ``deploy.log`` (``logs are in <dir>``). Only the
deploy directory was deleted when a record aged out, so the sessions piled up. When a
record goes, the session its log names goes too, unless it is still the newest session
(``latest``: the deployment that runs now may still be writing it).
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

log = logging.getLogger("loon_supervisor.deploy")

_SAID = re.compile(r"logs are in (\S+)")
_SESSION_NAME = re.compile(r"logs_\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d(?:_\d+)?")


def sessions_named(deploy_log: Path) -> list[Path]:
    """The session directories a deploy's log names."""
    try:
        text = deploy_log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    found = []
    for match in _SAID.finditer(text):
        path = Path(match.group(1).rstrip(".,;:)"))
        if not path.is_absolute():  # the deploy's children run in the server's directory
            path = Path.cwd() / path
        if _SESSION_NAME.fullmatch(path.name):
            found.append(path)
    return found


def prune_sessions(deploy_dir: Path) -> None:
    """Delete the session directories ``deploy_dir/deploy.log`` names, but never the one
    its logs directory's ``latest`` link points to, nor anything that is not a plain
    directory named like a session."""
    for session in sessions_named(deploy_dir / "deploy.log"):
        if session.is_symlink() or not session.is_dir():
            continue
        latest = session.parent / "latest"
        try:
            if latest.exists() and latest.resolve() == session.resolve():
                continue
        except OSError:
            continue
        shutil.rmtree(session, ignore_errors=True)
        log.info("deleted %s with the deploy record that wrote it", session)
