"""Live logs: the page, its Server-Sent Events stream and the session file's download.

Events carry JSON (``{"s": service, "l": [lines]}``), which the page's script puts into the
document as text (``textContent``), never as markup. Each event's id holds every file's
offset, so a browser that reconnects (``Last-Event-ID``) continues where it stopped, without
a line lost or repeated."""

from __future__ import annotations

import contextlib
import json
import logging
import re
from pathlib import Path

import anyio
from aiohttp import web

from loon_supervisor.dashboard.overview import deployment_name
from loon_supervisor.dashboard.render import html
from loon_supervisor.dashboard.security import PAGE_HEADERS, SESSIONS_KEY, current, page, session_id
from loon_supervisor.dashboard.tailer import (
    CACHE_ENTRIES,
    Reader,
    Watch,
    Watchers,
    tail_offset,
)
from loon_supervisor.lifecycle import state as statefile
from loon_supervisor.paths import logs_dir
from loon_supervisor.sinks.session import latest_session

log = logging.getLogger("loon_supervisor.deploy")
WATCHERS_KEY: web.AppKey[Watchers] = web.AppKey("dash_watchers", Watchers)
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
KEEPALIVE_S = 15.0
WRITE_TIMEOUT_S = 30.0  # a viewer that takes no data for this long is disconnected
MAX_SERVICES = 16


def session_dir(request: web.Request) -> Path | None:
    """The session ``loon status`` names: the state file's, else the latest one."""
    state = statefile.load(deployment_name(request))
    if state is not None and state.session.is_dir():
        return state.session
    return latest_session(logs_dir())


def log_files(session: Path | None) -> dict[str, Path]:
    """The session's log files by name (``out`` is the supervisor's own events)."""
    if session is None or not session.is_dir():
        return {}
    return {p.stem: p for p in sorted(session.glob("*.log"))
            if p.is_file() and NAME_RE.match(p.stem)}


def _chosen(request: web.Request, files: dict[str, Path]) -> list[str] | web.Response:
    wanted = request.query.getall("service", [])
    unknown = [w for w in wanted if w not in files]
    if unknown or len(wanted) > MAX_SERVICES:
        return web.Response(status=404, text="no such service log in this session; pick one "
                            "from /dashboard/logs\n", headers=PAGE_HEADERS)
    return list(dict.fromkeys(wanted))


@page
async def logs_page(request: web.Request) -> web.StreamResponse:
    files = log_files(session_dir(request))
    chosen = _chosen(request, files)
    if isinstance(chosen, web.Response):
        return chosen
    if not chosen:
        chosen = [n for n in files if n != "out"][:1] or list(files)[:1]
    query = "&".join(f"service={n}" for n in chosen)
    return html("logs.html", session=current(request), files=list(files), chosen=chosen,
                stream=f"/dashboard/logs/stream?{query}")


def _resume(last_event_id: str | None, files: dict[str, Path], chosen: list[str]
            ) -> dict[str, int]:
    """Offsets from Last-Event-ID (``name:offset,...``), else each file's tail."""
    offsets: dict[str, int] = {}
    for part in (last_event_id or "").split(","):
        name, _, num = part.partition(":")
        if name in chosen and num.isdigit():
            offsets[name] = int(num)
    return {n: offsets.get(n, tail_offset(files[n])) for n in chosen}


async def stream(request: web.Request) -> web.StreamResponse:
    if request.app[SESSIONS_KEY].get(session_id(request)) is None:
        return web.Response(status=401, text="not signed in\n", headers=PAGE_HEADERS)
    files = log_files(session_dir(request))
    chosen = _chosen(request, files)
    if isinstance(chosen, web.Response):
        return chosen
    if not chosen:
        return web.Response(status=400, text="name at least one service\n",
                            headers=PAGE_HEADERS)
    offsets = _resume(request.headers.get("Last-Event-ID"), files, chosen)
    response = web.StreamResponse(headers={**PAGE_HEADERS, "Content-Type": "text/event-stream",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    watchers = request.app[WATCHERS_KEY]
    with contextlib.ExitStack() as stack:
        watches = [stack.enter_context(watchers.watching(files[n])) for n in chosen]
        readers = {n: Reader(files[n], offsets[n], w.cache) for n, w in zip(chosen, watches,
                                                                          strict=True)}
        try:
            await response.write(b"retry: 1000\n\n")
            while not watchers.closing.is_set():
                changed = [w.changed for w in watches]  # before reading: no change missed
                events = _gather(readers, watches)
                if events:
                    await _send(response, events)
                    continue  # more may be waiting: read again before sleeping
                with anyio.move_on_after(KEEPALIVE_S) as idle:
                    if len(changed) == 1:  # the common case: no task per wait
                        await changed[0].wait()
                    else:
                        async with anyio.create_task_group() as tg:
                            for event in changed:
                                tg.start_soon(_wait_then_cancel, event, tg.cancel_scope)
                if idle.cancelled_caught:
                    await _send(response, b": keep-alive\n\n")
        except (ConnectionError, TimeoutError):
            pass  # the viewer went away or stopped reading: only its own stream ends
    return response


async def _wait_then_cancel(event: anyio.Event, scope: anyio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


def _gather(readers: dict[str, Reader], watches: list[Watch]) -> bytes:
    """The events for what the files gained; a one-file stream reuses the bytes another
    viewer at the same offset already encoded."""
    if len(readers) == 1:
        (name, reader), = readers.items()
        shared = watches[0].events
        hit = shared.get(reader.offset)
        if hit is not None:
            reader.offset = hit[0]
            return hit[1]
        start = reader.offset
        data = _encode(readers, name, reader.read())
        if data and not reader.restarted:
            shared[start] = (reader.offset, data)
            while len(shared) > CACHE_ENTRIES:
                shared.popitem(last=False)
        return data
    return b"".join(_encode(readers, name, reader.read()) for name, reader in readers.items())


def _encode(readers: dict[str, Reader], name: str, lines: list[str]) -> bytes:
    if not lines:
        return b""
    ident = ",".join(f"{n}:{r.offset}" for n, r in readers.items())
    data = json.dumps({"s": name, "l": lines}, ensure_ascii=False)
    return f"id: {ident}\ndata: {data}\n\n".encode()


async def _send(response: web.StreamResponse, data: bytes) -> None:
    with anyio.fail_after(WRITE_TIMEOUT_S):
        await response.write(data)


async def download(request: web.Request) -> web.StreamResponse:
    """The whole session file, as a download (never rendered by the browser)."""
    if request.app[SESSIONS_KEY].get(session_id(request)) is None:
        return web.Response(status=401, text="not signed in\n", headers=PAGE_HEADERS)
    files = log_files(session_dir(request))
    name = request.match_info["service"]
    if name not in files:
        return web.Response(status=404, text="no such service log in this session\n",
                            headers=PAGE_HEADERS)
    return web.FileResponse(files[name], headers={
        **PAGE_HEADERS, "Content-Type": "application/octet-stream",
        "Content-Disposition": f'attachment; filename="{name}.log"'})


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_get("/dashboard/logs", logs_page)
    r.add_get("/dashboard/logs/stream", stream)
    r.add_get("/dashboard/logs/download/{service}", download)
