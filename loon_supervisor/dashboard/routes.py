"""The dashboard's routes, added to the deploy server's application (deploy/app.py), so the
same listener, TLS, connection caps, timeouts and lockouts apply."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from loon_supervisor.dashboard import login, views
from loon_supervisor.dashboard.rates import RATES_KEY, LineRates
from loon_supervisor.dashboard.render import static
from loon_supervisor.dashboard.security import SESSIONS_KEY
from loon_supervisor.dashboard.sessions import SessionStore


async def _background(app: web.Application) -> AsyncIterator[None]:
    """The sparklines' once-a-minute count, for as long as the server runs."""
    task = asyncio.create_task(app[RATES_KEY].run())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _to_overview(request: web.Request) -> web.Response:
    return web.Response(status=303, headers={"Location": "/dashboard/"})


def add_dashboard(app: web.Application) -> None:
    app[SESSIONS_KEY] = SessionStore()
    app[RATES_KEY] = LineRates()
    app.cleanup_ctx.append(_background)
    r = app.router
    r.add_get("/dashboard", _to_overview)
    r.add_get("/dashboard/login", login.login_form)
    r.add_post("/dashboard/login", login.login)
    r.add_post("/dashboard/logout", login.logout)
    r.add_get("/dashboard/static/{name}", static)
    views.add_routes(r)
