"""The pages a signed-in operator sees."""

from __future__ import annotations

from aiohttp import web

from loon_supervisor.dashboard.render import html
from loon_supervisor.dashboard.security import current, page


@page
async def overview(request: web.Request) -> web.StreamResponse:
    return html("overview.html", session=current(request))


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_get("/dashboard/", overview)
