"""Connection limits aiohttp does not have: a header-read deadline, a cap on open
connections (overall and per client address), quiet one-line handling of malformed requests,
and an access log without query strings.

Hand-written on aiohttp's documented pieces (``RequestHandler``, ``TCPSite``,
``AbstractAccessLogger``) because aiohttp only offers a keep-alive timeout: a client that
sends half a header line, or never sends anything, would otherwise hold a socket for an
hour (issue 15).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from loon_supervisor.deploy.logsafe import escape, loggable_path

log = logging.getLogger("loon_supervisor.deploy")

SERVER_HEADER = "loon-deploy"
JSON_HEADERS = {"Cache-Control": "no-store", "Server": SERVER_HEADER}


class PathOnlyAccessLogger(AbstractAccessLogger):
    """One line per request with the path only (a query string may hold a token), escaped,
    and for unknown paths only their length (see logsafe.py)."""

    def log(self, request: BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info('%s "%s %s" %d %s %.3fs', request.remote or "?",
                         escape(request.method), loggable_path(request.path), response.status,
                         response.body_length, time)


class ConnectionLimits:
    """Counts open connections overall and per client address; says who may connect.

    Refusals are logged at most once per ``quiet`` seconds with a count, so a flood of
    connections cannot flood the log.
    """

    def __init__(self, total: int, per_client: int, quiet: float = 10.0) -> None:
        self.total = total
        self.per_client = per_client
        self.open = 0
        self.by_client: Counter[str] = Counter()
        self._quiet = quiet
        self._refused = 0
        self._last_log = 0.0

    def admit(self, client: str) -> bool:
        if self.open >= self.total or self.by_client[client] >= self.per_client:
            self._note_refusal(client)
            return False
        self.open += 1
        self.by_client[client] += 1
        return True

    def release(self, client: str) -> None:
        self.open -= 1
        self.by_client[client] -= 1
        if self.by_client[client] <= 0:
            del self.by_client[client]

    def _note_refusal(self, client: str) -> None:
        self._refused += 1
        now = time.monotonic()
        if now - self._last_log >= self._quiet:
            log.warning("connection limit reached (%d open, at most %d per client): closed %d "
                        "connection(s), the last from %s", self.open, self.per_client,
                        self._refused, client)
            self._refused = 0
            self._last_log = now


def json_error(status: int, message: str, headers: dict[str, str] | None = None
               ) -> web.Response:
    return web.json_response({"error": message}, status=status,
                             headers={**JSON_HEADERS, **(headers or {})})


class GuardedHandler(RequestHandler):
    """aiohttp's per-connection protocol plus the header deadline and the connection caps."""

    def __init__(self, manager: web.Server, *, limits: ConnectionLimits, header_timeout: float,
                 keepalive_timeout: float, **kwargs: Any) -> None:
        super().__init__(manager, keepalive_timeout=keepalive_timeout, **kwargs)
        self._limits = limits
        self._header_timeout = header_timeout
        self._idle_timeout = keepalive_timeout + header_timeout
        self._client: str | None = None
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        peer = transport.get_extra_info("peername")
        client = str(peer[0]) if peer else "?"
        if not self._limits.admit(client):
            self.force_close()
            transport.close()
            return
        self._client = client
        self._arm(self._header_timeout)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        if self._client is not None:
            self._limits.release(self._client)
            self._client = None
        super().connection_lost(exc)

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = asyncio.get_running_loop().call_later(seconds, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        self.force_close()  # closes the transport too

    def request_started(self) -> None:
        """The headers are in: the handler's own timeouts (body, deploy) take over."""
        self._disarm()

    def request_finished(self) -> None:
        """Idle again: aiohttp closes after the keep-alive timeout; this also bounds a next
        request whose headers arrive slowly."""
        if self._client is not None:
            self._arm(self._idle_timeout)

    def handle_error(self, request: BaseRequest, status: int = 500,
                     exc: BaseException | None = None, message: str | None = None
                     ) -> web.StreamResponse:
        """One log line naming the error's class, never its text (which quotes the
        sender's bytes), and a JSON answer."""
        what = type(exc).__name__ if exc is not None else HTTPStatus(status).phrase
        log.warning("request from %s refused: %d %s (%s)", request.remote or "?", status,
                    HTTPStatus(status).phrase, what)
        if request.writer.output_size > 0:
            raise ConnectionError("response already started; cannot send the error")
        text = "malformed request" if status == 400 else HTTPStatus(status).phrase.lower()
        resp = json_error(status, text)
        resp.force_close()
        return resp


class GuardedSite(web.TCPSite):
    """``TCPSite`` whose connections are :class:`GuardedHandler` protocols."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, *, limits: ConnectionLimits,
                 header_timeout: float, keepalive_timeout: float, **kwargs: Any) -> None:
        super().__init__(runner, host, port, **kwargs)
        self._handler_kwargs: dict[str, Any] = {
            "limits": limits, "header_timeout": header_timeout,
            "keepalive_timeout": keepalive_timeout, "access_log_class": PathOnlyAccessLogger,
        }

    async def start(self) -> None:
        # Mirrors TCPSite.start with our protocol factory in place of the runner's server.
        await web.BaseSite.start(self)
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None

        def factory() -> GuardedHandler:
            return GuardedHandler(server, loop=loop, **self._handler_kwargs)

        self._server = await loop.create_server(
            factory, self._host, self._port, ssl=self._ssl_context, backlog=self._backlog,
            reuse_address=self._reuse_address, reuse_port=self._reuse_port)
        self._bound_port = (self._server.sockets[0].getsockname()[1] if self._server.sockets
                            else self._port)
