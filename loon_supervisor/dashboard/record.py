"""Every dashboard action in out.log, with who did it (the login name, role and address)."""

from __future__ import annotations

import logging

from aiohttp import web

from loon_supervisor.dashboard.logs import session_dir
from loon_supervisor.dashboard.security import current
from loon_supervisor.sinks.session import EventLog

log = logging.getLogger("loon_supervisor.deploy")


def record(request: web.Request, what: str) -> str:
    """Append ``dashboard: <what> by <who>`` to the current session's out.log and the
    server's log; returns the line."""
    line = f"dashboard: {what} by {current(request).who}"
    log.info("%s", line)
    session = session_dir(request)
    if session is not None:
        try:
            events = EventLog(session / "out.log")
        except OSError as exc:
            log.warning("cannot record in %s/out.log (%s)", session, exc.strerror or exc)
            return line
        try:
            events.event(line)
        finally:
            events.close()
    return line
