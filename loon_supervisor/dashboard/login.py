"""Signing in and out. A wrong password counts against the client address exactly like a
wrong deploy token (the same counter: ten wrong tries from an address in a minute lock it
out of both), and the right password is never refused (see deploy/app.py)."""

from __future__ import annotations

import logging
import re

from aiohttp import web

from loon_supervisor.dashboard.render import html
from loon_supervisor.dashboard.security import (
    SESSIONS_KEY,
    clear_session_cookie,
    same_origin,
    see_other,
    session_id,
    set_session_cookie,
)
from loon_supervisor.deploy.app import FAILURES_KEY, LOCKOUT_LOG_KEY, SETTINGS_KEY, who
from loon_supervisor.deploy.handshake_guard import client_key

log = logging.getLogger("loon_supervisor.deploy")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


def _form(status: int, error: str | None = None, name: str = "") -> web.Response:
    return html("login.html", status, error=error, name=name)


async def login_form(request: web.Request) -> web.Response:
    if request.app[SESSIONS_KEY].get(session_id(request)) is not None:
        return see_other("/dashboard/")
    return _form(200)


async def login(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS_KEY]
    assert settings.dashboard is not None
    if not same_origin(request):
        return _form(403, "this form was posted from another site")
    form = await request.post()
    name, password = form.get("name"), form.get("password")
    name = name.strip() if isinstance(name, str) else ""
    if not isinstance(password, str) or not password:
        return _form(400, "enter the dashboard password", name)
    if not NAME_RE.match(name):
        return _form(400, "enter your name (letters, digits, . _ @ -; up to 64): actions "
                     "are recorded with it", "")
    client = who(request)
    key = client_key(client)
    role = settings.dashboard.role_of(password)
    if role is None:
        failures = request.app[FAILURES_KEY]
        wait = failures.retry_after(key)
        if wait is not None:
            request.app[LOCKOUT_LOG_KEY].note(
                lambda n: f"dashboard login from {client} refused: too many failed "
                f"authentications from {key} (429; {n} such refusal(s))")
            response = _form(429, f"too many failed sign-ins from your address; try again "
                             f"in {wait} s", name)
            response.headers["Retry-After"] = str(wait)
            return response
        failures.failed(key)
        log.warning("dashboard login from %s refused: wrong password (403)", client)
        return _form(403, "wrong password", name)
    sid, session = request.app[SESSIONS_KEY].create(name, role, client)
    log.info("dashboard: %s signed in", session.who)
    response = see_other("/dashboard/")
    set_session_cookie(request, response, sid)
    return response


async def logout(request: web.Request) -> web.Response:
    """Sign out (a POST with the CSRF token is not needed to end one's own session: the
    worst a forged sign-out does is sign someone out)."""
    sessions = request.app[SESSIONS_KEY]
    session = sessions.get(session_id(request))
    if session is not None:
        log.info("dashboard: %s signed out", session.who)
    sessions.drop(session_id(request))
    response = see_other("/dashboard/login")
    clear_session_cookie(request, response)
    return response
