"""Which session directory ``loon logs`` reads for a deployment."""

from __future__ import annotations

from pathlib import Path

from loon_supervisor.logs.session import latest_session
from loon_supervisor.paths import logs_dir
from loon_supervisor.state import read_state


def pick_session(name: str, explicit: bool) -> Path | None:
    """The session a detached deployment's logger writes; else, when the deployment was
    named explicitly, the newest session whose out.log mentions it; else the latest one."""
    state = read_state(name) or {}
    session = state.get("session")
    if isinstance(session, str) and Path(session).is_dir():
        return Path(session)
    if explicit:
        for candidate in sorted(logs_dir().glob("logs_*"), reverse=True):
            try:
                if name in (candidate / "out.log").read_text(errors="replace"):
                    return candidate
            except OSError:
                continue
    return latest_session(logs_dir())
