"""Connection limits aiohttp does not have: a header-read deadline, a cap on open
connections (overall and per client, counted from accept: handshake_guard.py), quiet one-line
handling of malformed requests, and an access log without query strings.

Hand-written on aiohttp's documented pieces (``RequestHandler``, ``TCPSite``,
``AbstractAccessLogger``) because aiohttp only offers a keep-alive timeout: a client that
sends half a header line, or never sends anything, would otherwise hold a socket for an
hour (issue 15).
"""

from __future__ import annotations

import asyncio
import logging
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from loon_supervisor.deploy.handshake_guard import (
    Admission,
    GuardedListener,
    Ticket,
    peer_host,
)
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


def json_error(status: int, message: str, headers: dict[str, str] | None = None
               ) -> web.Response:
    return web.json_response({"error": message}, status=status,
                             headers={**JSON_HEADERS, **(headers or {})})


class GuardedHandler(RequestHandler):
    """aiohttp's per-connection protocol plus the header deadline and the connection caps.

    On plain HTTP it is the listening socket's protocol and takes its :class:`Ticket` at
    accept; behind TLS, :class:`TlsGate` took it at accept and passes it in."""

    def __init__(self, manager: web.Server, *, admission: Admission, header_timeout: float,
                 keepalive_timeout: float, ticket: Ticket | None = None, **kwargs: Any) -> None:
        super().__init__(manager, keepalive_timeout=keepalive_timeout, **kwargs)
        self._admission = admission
        self._header_timeout = header_timeout
        self._idle_timeout = keepalive_timeout + header_timeout
        self.ticket = ticket
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self.ticket is None:
            self.ticket = self._admission.admit(peer_host(transport))
            if self.ticket is None:
                self.force_close()
                transport.close()
                return
        self._arm(self._header_timeout)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        if self.ticket is not None:
            self.ticket.release()
            self.ticket = None
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
        if self.ticket is not None:
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
    """``TCPSite`` whose connections are :class:`GuardedHandler` protocols, admitted at
    accept by a :class:`GuardedListener` (with TLS, under its handshake timeout)."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, *, admission: Admission,
                 header_timeout: float, keepalive_timeout: float,
                 handshake_timeout: float = 5.0, **kwargs: Any) -> None:
        super().__init__(runner, host, port, **kwargs)
        self._admission = admission
        self._handshake_timeout = handshake_timeout
        self._handler_kwargs: dict[str, Any] = {
            "admission": admission, "header_timeout": header_timeout,
            "keepalive_timeout": keepalive_timeout, "access_log_class": PathOnlyAccessLogger,
        }

    async def start(self) -> None:
        # Mirrors TCPSite.start with our own listener in place of loop.create_server.
        await web.BaseSite.start(self)
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None

        def handler(ticket: Ticket) -> GuardedHandler:
            return GuardedHandler(server, loop=loop, ticket=ticket, **self._handler_kwargs)

        listener = GuardedListener.bind(
            self._host or "0.0.0.0", self._port, self._backlog, admission=self._admission,
            make_protocol=handler, ssl_context=self._ssl_context,
            handshake_timeout=self._handshake_timeout)
        self._server = listener
        self._bound_port = (listener.sockets[0].getsockname()[1] if listener.sockets
                            else self._port)

    async def stop(self) -> None:
        listener = self._server
        await super().stop()
        if listener is not None:
            await listener.wait_closed()
