"""Admission at ``accept``: who may connect and how many, decided before any TLS or HTTP work.

asyncio's own TLS server calls the HTTP protocol's ``connection_made`` only after the
handshake and allows 60 s for it, so a TCP connection that never sends a ClientHello was
neither counted nor timed (issue 26: 1,200 of them held the server at 1024/1024
descriptors). Here :class:`GuardedListener` accepts itself: each socket is counted at once
(:class:`Admission`) or closed at once (over a cap, or outside ``--allow-from``), then
gets its TLS handshake under a short timeout, and only then reaches the HTTP protocol,
which keeps the same :class:`Ticket` until the connection closes.

Clients are counted by :func:`client_key`: an IPv6 host holds a whole /64 (one customer
network), so each address of it is the same client; IPv4-mapped IPv6 addresses are IPv4.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from typing import Any

log = logging.getLogger("loon_supervisor.deploy")

IPV6_PREFIX = 64
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def client_key(host: str) -> str:
    """What connection caps and lockouts count: the IPv4 address, or the IPv6 /64."""
    try:
        addr = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host or "?"
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{addr}/{IPV6_PREFIX}", strict=False))
    return str(addr)


def peer_host(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if peer else "?"


class Throttled:
    """A warning logged at most once per ``quiet`` seconds, with how often it happened.

    What happened after a logged line is summed up one interval later (when an event loop
    runs), so a burst that stops is still counted in the log."""

    def __init__(self, quiet: float = 10.0) -> None:
        self.quiet = quiet
        self.count = 0
        self._last = float("-inf")
        self._message: Callable[[int], str] | None = None
        self._flush: asyncio.TimerHandle | None = None

    def note(self, message: Callable[[int], str]) -> None:
        self.count += 1
        self._message = message
        now = time.monotonic()
        if now - self._last >= self.quiet:
            self._emit(now)
        elif self._flush is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            self._flush = loop.call_later(self.quiet - (now - self._last), self._flushed)

    def _flushed(self) -> None:
        self._flush = None
        if self.count:
            self._emit(time.monotonic())

    def _emit(self, now: float) -> None:
        assert self._message is not None
        log.warning("%s", self._message(self.count))
        self.count = 0
        self._last = now


class Ticket:
    """One admitted connection; :meth:`release` frees its place exactly once."""

    def __init__(self, admission: Admission, key: str, host: str) -> None:
        self._admission = admission
        self.key = key
        self.host = host
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._admission._release(self.key)


class Admission:
    """Open connections overall and per client; ``--allow-from``; refusals throttled."""

    def __init__(self, total: int, per_client: int, allow_from: Sequence[Network] = (),
                 quiet: float = 10.0, proxies: Sequence[Network] = ()) -> None:
        self.total = total
        self.per_client = per_client
        self.allow_from = tuple(allow_from)
        self.proxies = tuple(proxies)  # --trusted-proxy: only the total cap applies
        self.open = 0
        self.by_client: dict[str, int] = {}
        self._full = Throttled(quiet)
        self._outside = Throttled(quiet)

    def allowed(self, host: str) -> bool:
        return not self.allow_from or self._in(host, self.allow_from)

    @staticmethod
    def _in(host: str, nets: Sequence[Network]) -> bool:
        try:
            addr = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        return any(addr in net for net in nets)

    def admit(self, host: str) -> Ticket | None:
        """A ticket, or None (the caller closes the connection at once)."""
        if not self.allowed(host):
            self._outside.note(lambda n: f"closed {n} connection(s) from outside --allow-from, "
                               f"the last from {host}")
            return None
        key = client_key(host)
        per_client = self.total if self._in(host, self.proxies) else self.per_client
        if self.open >= self.total or self.by_client.get(key, 0) >= per_client:
            self._full.note(lambda n: f"connection limit reached ({self.open} open, at most "
                            f"{self.per_client} per client): closed {n} connection(s), the "
                            f"last from {key}")
            return None
        self.open += 1
        self.by_client[key] = self.by_client.get(key, 0) + 1
        return Ticket(self, key, host)

    def _release(self, key: str) -> None:
        self.open -= 1
        left = self.by_client.get(key, 0) - 1
        if left > 0:
            self.by_client[key] = left
        else:
            self.by_client.pop(key, None)


class GuardedListener(asyncio.AbstractServer):
    """The listening sockets with an accept loop of their own (see the module docstring).

    Each accepted socket is admitted or closed right there, before the event loop gives it
    a transport: asyncio's own loop accepts up to ``backlog`` sockets per wake-up and only
    later lets a protocol refuse them, so a queued flood held that many descriptors at once.
    Admitted sockets are handed to ``loop.connect_accepted_socket`` (public API), with TLS
    and its handshake timeout when serving HTTPS.
    """

    def __init__(self, sockets: list[socket.socket], *, admission: Admission,
                 make_protocol: Callable[[Ticket], asyncio.Protocol],
                 ssl_context: ssl.SSLContext | None, handshake_timeout: float,
                 quiet: float = 10.0) -> None:
        self._loop = asyncio.get_running_loop()
        self._sockets = sockets
        self._admission = admission
        self._make_protocol = make_protocol
        self._ssl = ssl_context
        self._timeout = handshake_timeout
        self._tasks: set[asyncio.Task[None]] = set()
        self._handshake_failures = Throttled(quiet)
        self._accept_errors = Throttled(quiet)
        self._serving = False
        self._retry: asyncio.TimerHandle | None = None

    @classmethod
    def bind(cls, host: str, port: int, backlog: int, **kwargs: Any) -> GuardedListener:
        """Listen on every address ``host`` resolves to (as ``loop.create_server`` does)."""
        sockets: list[socket.socket] = []
        try:
            for family, kind, proto, _, addr in socket.getaddrinfo(
                    host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE):
                sock = socket.socket(family, kind, proto)
                sockets.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(addr)
                sock.listen(backlog)
                sock.setblocking(False)
        except BaseException:
            for sock in sockets:
                sock.close()
            raise
        listener = cls(sockets, **kwargs)
        listener._start()
        return listener

    def _start(self) -> None:
        self._serving = True
        for sock in self._sockets:
            self._loop.add_reader(sock.fileno(), self._accept, sock)

    def _pause(self) -> None:
        for sock in self._sockets:
            self._loop.remove_reader(sock.fileno())

    def _accept(self, sock: socket.socket) -> None:
        for _ in range(64):  # then let the loop serve others; the reader fires again
            try:
                conn, addr = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:  # EMFILE, ENFILE, ENOBUFS, ENOMEM: pause one second
                self._note_accept_error(exc.strerror or type(exc).__name__)
                self._pause()
                self._retry = self._loop.call_later(1.0, self._start)
                return
            ticket = self._admission.admit(str(addr[0]) if addr else "?")
            if ticket is None:
                conn.close()  # at once: a refused connection never holds a descriptor
                continue
            conn.setblocking(False)
            task = self._loop.create_task(self._connect(conn, ticket))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _note_accept_error(self, why: str) -> None:
        self._accept_errors.note(lambda n: f"cannot accept connections: {why} ({n} time(s)); "
                                 "raise the descriptor limit or lower --max-connections")

    async def _connect(self, conn: socket.socket, ticket: Ticket) -> None:
        kwargs: dict[str, Any] = {}
        if self._ssl is not None:
            kwargs = {"ssl": self._ssl, "ssl_handshake_timeout": self._timeout,
                      "ssl_shutdown_timeout": self._timeout}
        try:
            await self._loop.connect_accepted_socket(
                lambda: self._make_protocol(ticket), conn, **kwargs)
        except asyncio.CancelledError:
            conn.close()
            ticket.release()
            raise
        except (TimeoutError, OSError, EOFError) as exc:
            conn.close()
            ticket.release()
            why = type(exc).__name__
            self._handshake_failures.note(
                lambda n: f"TLS handshake failed or timed out for {n} connection(s), the "
                f"last from {ticket.host} ({why})")

    # asyncio.AbstractServer, as far as aiohttp uses it

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return tuple(self._sockets)

    def close(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
        if self._serving:
            self._serving = False
            self._pause()
        for sock in self._sockets:
            sock.close()
        for task in list(self._tasks):
            task.cancel()

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return self._serving

    async def wait_closed(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
