"""What every dashboard answer carries, and the checks before any page or action: the
session cookie, the CSRF token and the Origin of a form post.

Pages are HTML with a strict Content-Security-Policy (scripts and styles from this server's
files only, nothing inline, no frames); the cookie is ``HttpOnly``, ``SameSite=Strict`` and
``Secure`` whenever the browser reaches the server over TLS (the server's own, or a TLS proxy
in front of it)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import overload
from urllib.parse import urlsplit

from aiohttp import web

from loon_supervisor.dashboard.sessions import Session, SessionStore
from loon_supervisor.deploy.app import SETTINGS_KEY

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",  # no-referrer makes form posts say Origin: null
    "Cache-Control": "no-store",
}
SESSIONS_KEY: web.AppKey[SessionStore] = web.AppKey("dash_sessions", SessionStore)
SESSION_KEY: web.RequestKey[Session] = web.RequestKey("dash_session", Session)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def over_tls(request: web.Request) -> bool:
    """True when the browser talks TLS: to this server, or to a TLS proxy in front."""
    settings = request.app[SETTINGS_KEY]
    return settings.ssl_context is not None or settings.opts.behind_tls_proxy


def cookie_name(request: web.Request) -> str:
    # __Host- binds the cookie to this host and path / (browsers accept it only if Secure).
    return "__Host-loon-dashboard" if over_tls(request) else "loon-dashboard"


def set_session_cookie(request: web.Request, response: web.StreamResponse,
                       session_id: str) -> None:
    response.set_cookie(cookie_name(request), session_id, path="/", httponly=True,
                        secure=over_tls(request), samesite="Strict")


def clear_session_cookie(request: web.Request, response: web.StreamResponse) -> None:
    response.del_cookie(cookie_name(request), path="/", secure=over_tls(request),
                        httponly=True, samesite="Strict")


def session_id(request: web.Request) -> str | None:
    return request.cookies.get(cookie_name(request))


def current(request: web.Request) -> Session:
    return request[SESSION_KEY]


def same_origin(request: web.Request) -> bool:
    """A form post's Origin (when the browser sends one) must be this server."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # SameSite=Strict and the CSRF token still apply
    return urlsplit(origin).netloc == request.host


def page(handler: Handler) -> Handler:
    """A page for a signed-in browser: others are sent to the login form."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        session = request.app[SESSIONS_KEY].get(session_id(request))
        if session is None:
            return see_other("/dashboard/login")
        request[SESSION_KEY] = session
        response = await handler(request)
        response.headers.update(PAGE_HEADERS)
        return response

    return wrapped


def _posted(handler: Handler, viewer: bool) -> Handler:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        session = request.app[SESSIONS_KEY].get(session_id(request))
        if session is None:
            return refused("not signed in (or the session expired): sign in again")
        form = await request.post()
        token = form.get("csrf")
        if not same_origin(request) or not session.csrf_ok(token if isinstance(token, str)
                                                            else None):
            return refused("the form's CSRF token is missing or wrong: reload the page "
                           "and try again")
        if not viewer and not session.may_act:
            return refused("this session is read-only (signed in with the viewer password)")
        request[SESSION_KEY] = session
        response = await handler(request)
        response.headers.update(PAGE_HEADERS)
        return response

    return wrapped


@overload
def action(handler: Handler) -> Handler: ...
@overload
def action(*, viewer: bool) -> Callable[[Handler], Handler]: ...


def action(handler: Handler | None = None, *, viewer: bool = False
           ) -> Handler | Callable[[Handler], Handler]:
    """A form post: a signed-in session, the session's CSRF token, a same-origin request
    and (unless ``viewer``, for read-only posts such as running doctor) a session that may
    act; anything else is refused with 403 and changes nothing."""
    if handler is not None:
        return _posted(handler, viewer)
    return lambda h: _posted(h, viewer)


def refused(message: str) -> web.Response:
    return web.Response(status=403, text=message + "\n", headers=PAGE_HEADERS)


def see_other(location: str) -> web.Response:
    """303: after a form post, the browser GETs ``location`` (a path on this server)."""
    return web.Response(status=303, headers={**PAGE_HEADERS, "Location": location})
