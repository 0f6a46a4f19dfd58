"""The dashboard's routes, added to the deploy server's application (deploy/app.py), so the
same listener, TLS, connection caps, timeouts and lockouts apply."""

from __future__ import annotations

from aiohttp import web

from loon_supervisor.dashboard import login, views
from loon_supervisor.dashboard.render import static
from loon_supervisor.dashboard.security import SESSIONS_KEY
from loon_supervisor.dashboard.sessions import SessionStore


async def _to_overview(request: web.Request) -> web.Response:
    return web.Response(status=303, headers={"Location": "/dashboard/"})


def add_dashboard(app: web.Application) -> None:
    app[SESSIONS_KEY] = SessionStore()
    r = app.router
    r.add_get("/dashboard", _to_overview)
    r.add_get("/dashboard/login", login.login_form)
    r.add_post("/dashboard/login", login.login)
    r.add_post("/dashboard/logout", login.logout)
    r.add_get("/dashboard/static/{name}", static)
    views.add_routes(r)
