"""The dashboard's routes, added to the deploy server's application (deploy/app.py), so the
same listener, TLS, connection caps, timeouts and lockouts apply."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from loon_supervisor.dashboard import actions, login, logs, versions, views
from loon_supervisor.dashboard.logs import WATCHERS_KEY
from loon_supervisor.dashboard.rates import RATES_KEY, LineRates
from loon_supervisor.dashboard.render import static
from loon_supervisor.dashboard.security import SESSIONS_KEY
from loon_supervisor.dashboard.sessions import SessionStore
from loon_supervisor.dashboard.tailer import Watchers


async def _background(app: web.Application) -> AsyncIterator[None]:
    """The sparklines' once-a-minute count, for as long as the server runs."""
    tasks = [asyncio.create_task(app[RATES_KEY].run()),
             asyncio.create_task(app[WATCHERS_KEY].run())]
    yield
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _end_streams(app: web.Application) -> None:
    """On shutdown, live-log streams end at once (the server does not wait for them)."""
    app[WATCHERS_KEY].closing.set()


async def _to_overview(request: web.Request) -> web.Response:
    return web.Response(status=303, headers={"Location": "/dashboard/"})


def add_dashboard(app: web.Application) -> None:
    app[SESSIONS_KEY] = SessionStore()
    app[RATES_KEY] = LineRates()
    app[WATCHERS_KEY] = Watchers()
    app.cleanup_ctx.append(_background)
    app.on_shutdown.append(_end_streams)
    r = app.router
    r.add_get("/dashboard", _to_overview)
    r.add_get("/dashboard/login", login.login_form)
    r.add_post("/dashboard/login", login.login)
    r.add_post("/dashboard/logout", login.logout)
    r.add_get("/dashboard/static/{name}", static)
    views.add_routes(r)
    logs.add_routes(r)
    actions.add_routes(r)
    versions.add_routes(r)
