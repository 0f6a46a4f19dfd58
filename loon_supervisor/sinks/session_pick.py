"""Which session ``loon logs`` shows, and why.

The newest session directory is not always the useful one: a run that failed before it
followed anything (bad build, name conflict) leaves a session holding only ``out.log``, and
following that shows nothing, forever. So: the deployment's current session when its state
names one; else the newest session that has service files; else the newest session's
``out.log``, with a sentence saying why.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SUPERVISOR_FILES = frozenset({"out", "container"})


@dataclass(frozen=True)
class Pick:
    """The session to show; ``note`` explains a choice the operator may not expect."""

    session: Path
    note: str | None = None
    only_out_log: bool = False


def _sessions(logs_root: Path) -> list[Path]:
    return sorted(p for p in logs_root.glob("logs_*") if p.is_dir())


def has_service_files(session: Path) -> bool:
    return any(p.stem not in SUPERVISOR_FILES for p in session.glob("*.log"))


def pick_session(logs_root: Path, current: Path | None = None) -> Pick | None:
    """The session to show, or None when there is none at all."""
    if current is not None and current.is_dir():
        return Pick(current)
    sessions = _sessions(logs_root)
    if not sessions:
        return None
    newest = sessions[-1]
    for session in reversed(sessions):
        if has_service_files(session):
            if session == newest:
                return Pick(session)
            return Pick(session, f"the newest session {newest.name} has no service logs (its "
                        f"run stopped before following; see {newest / 'out.log'}); showing "
                        f"{session.name}")
    return Pick(newest, f"no session has service logs yet; showing {newest.name}/out.log "
                "(the supervisor's events: the run stopped before following any service)",
                only_out_log=True)
