"""Server-rendered pages: Jinja2 templates with autoescaping on (log lines, service names
and reasons are text, never markup)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from loon_supervisor.dashboard.security import PAGE_HEADERS

HERE = Path(__file__).resolve().parent
_env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                          autoescape=True, undefined=jinja2.StrictUndefined,
                          trim_blocks=True, lstrip_blocks=True)


def html(template: str, status: int = 200, **context: Any) -> web.Response:
    text = _env.get_template(template).render(**context)
    return web.Response(text=text, status=status, content_type="text/html",
                        charset="utf-8", headers=PAGE_HEADERS)


STATIC = {"app.js": "text/javascript", "dash.css": "text/css"}


async def static(request: web.Request) -> web.Response:
    """The two files the pages load (CSP allows only this server's own)."""
    name = request.match_info["name"]
    if name not in STATIC:
        raise web.HTTPNotFound()
    body = (HERE / "static" / name).read_bytes()
    return web.Response(body=body, content_type=STATIC[name], charset="utf-8",
                        headers=PAGE_HEADERS)
