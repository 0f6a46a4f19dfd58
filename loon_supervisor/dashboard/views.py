"""The pages a signed-in operator sees."""

from __future__ import annotations

from aiohttp import web

from loon_supervisor.dashboard import overview


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_get("/dashboard/", overview.overview)
