"""The engine's multiplexed exec frames, parsed by hand (:class:`FrameReader`), and the
coalescing that lets busy followers share one read per tick."""

from __future__ import annotations

import asyncio
import math
import os
import struct
from typing import Any

import aiodocker

from loon_supervisor.engine import raw as rawapi

HEADER = struct.Struct(">BxxxL")  # stream (1 stdout, 2 stderr), payload size


# How long a follower lets frames pile up in the socket after it handed a batch on: each line
# of a slow service arrives in its own exec frame, and every frame read costs a loop
# iteration (epoll, recv, parse) and every hand-over a task wake-up, a notice check and a
# write. After a batch the socket is left unread until the next multiple of COALESCE on the
# loop's clock: all busy followers are then read in the same loop iteration, each with one
# recv, and a line waits at most COALESCE. A quiet stream's first bytes are handed on at once. The trade
# (delay vs CPU vs p99) is measured by the bench's sweep and written in BENCHMARKS.md.
# LOON_COALESCE_MS overrides it (the sweep uses it; 0 turns coalescing off).
COALESCE = float(os.environ.get("LOON_COALESCE_MS", "15")) / 1000
READ_LIMIT = 256 * 1024  # stop reading the socket while this much is parsed, not taken
BULK = 64 * 1024  # a batch this big means bulk transfer: no pause, read on at once
TICK_GRACE = 0.001  # after a tick: time for the bytes waiting in the socket to be read
IDLE_TICKS = 4  # empty ticks in a row after which a stream counts as quiet


class FrameReader:
    """The engine's multiplexed exec frames (8-byte header: stream, size), parsed by hand as
    the socket delivers them.

    Stands in for aiodocker's parser and queue, which build one Message, one queue entry and
    one task wake-up per frame: here every frame's stdout payload is appended to one buffer
    and :meth:`take` hands all of it over at once. After a hand-over smaller than ``BULK``
    the socket is paused until the next ``delay`` tick (see ``COALESCE``); flow control
    also pauses it while
    ``READ_LIMIT`` bytes wait. It is both the parser and the payload that aiohttp's protocol
    feeds (``feed_data``, ``feed_eof``, ``set_exception``, ``is_eof``).
    """

    def __init__(self, transport: Any, delay: float = 0.0) -> None:
        self._transport = transport  # anything with pause_reading() / resume_reading()
        self._loop = asyncio.get_running_loop()
        self._delay = delay
        self._raw = bytearray()
        self._out = bytearray()
        # stderr frames (the exec's own messages), each with the number of stdout bytes
        # parsed before it: where in the data the engine placed it
        self.notices: list[tuple[int, bytes]] = []
        self.parsed = 0  # stdout payload bytes parsed so far
        self._eof = False
        self._exc: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._holding = False  # paused until the next tick
        self._full = False  # paused by flow control
        self._closed = False
        self._got = False  # bytes came since the last tick
        self._empty_ticks = 0

    # -- the protocol's side (called by aiohttp from data_received / connection_lost)
    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        raw = self._raw
        raw += data
        pos, n = 0, len(raw)
        with memoryview(raw) as view:  # payloads copied once, straight into _out
            while n - pos >= 8:
                kind, size = HEADER.unpack_from(raw, pos)
                end = pos + 8 + size
                if end > n:
                    break
                if kind == 2:
                    self.notices.append((self.parsed, bytes(view[pos + 8:end])))
                else:
                    self._out += view[pos + 8:end]
                    self.parsed += size
                pos = end
        if pos:
            del raw[:pos]
            self._got = True
            if len(self._out) >= READ_LIMIT and not self._full:
                self._full = True
                self._reading(False)
            self._wake()
        return False, b""

    def feed_eof(self) -> None:
        self._eof = True
        self._wake()

    def is_eof(self) -> bool:
        return self._eof

    def set_exception(self, exc: BaseException, exc_cause: BaseException | None = None
                      ) -> None:
        self._exc = exc
        self._wake()

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _reading(self, on: bool) -> None:
        """Pause or resume the socket; it reads only when neither the tick nor flow control
        holds it."""
        if self._closed:
            return
        if on and not (self._holding or self._full):
            self._transport.resume_reading()
        elif not on:
            self._transport.pause_reading()

    def _hold(self) -> None:
        """Leave the socket unread until the next tick."""
        if self._timer is not None:
            self._timer.cancel()
        d = self._delay
        self._holding = True
        self._reading(False)
        self._timer = self._loop.call_at(math.ceil(self._loop.time() / d) * d, self._tick)

    def _tick(self) -> None:
        """Read what came meanwhile; if nothing did, go on holding to the next tick (a busy
        stream stays on the shared ticks), unless ``IDLE_TICKS`` ticks in a row were empty:
        then read on and hand the next bytes over at once (a quiet stream costs nothing)."""
        self._holding = False
        self._got = False
        self._reading(True)
        self._timer = self._loop.call_later(TICK_GRACE, self._after_tick)

    def _after_tick(self) -> None:
        self._timer = None
        if self._got or self._out or self._eof or self._exc is not None or self._closed:
            return
        self._empty_ticks += 1
        if self._empty_ticks < IDLE_TICKS:
            self._hold()

    # -- the reader's side
    async def wait(self) -> None:
        """Until there are bytes, notices, the end or an error."""
        if self._out or self.notices or self._eof or self._exc is not None:
            return
        self._waiter = self._loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def take(self) -> bytes | None:
        """Every stdout byte parsed so far (b"" if none); None at the end."""
        if not self._out:
            return None if self._eof or self._exc is not None else b""
        out = bytes(self._out)
        self._out.clear()
        if self._full:
            self._full = False
            self._reading(True)
        if (self._delay and len(out) < BULK and not self._holding and not self._eof
                and self._exc is None):
            self._empty_ticks = 0
            self._hold()
        return out

    def close(self) -> None:
        """No more reads: drop the tick (the stream itself is closed by its owner)."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    @property
    def error(self) -> BaseException | None:
        """What broke the stream (raised by the reader once the bytes before it are taken)."""
        return self._exc


def take_over_frames(stream: aiodocker.stream.Stream, delay: float = 0.0) -> FrameReader:
    """Put a :class:`FrameReader` in place of aiodocker's parser on an attached exec stream
    (through engine/raw.py, the one place that touches aiodocker's private side)."""
    # Pause and resume go straight to asyncio's transport (public asyncio API): aiohttp's
    # protocol wrappers around them cost as much again, twice per tick and follower.
    reader = FrameReader(rawapi.exec_protocol(stream).transport, delay)
    rawapi.replace_exec_parser(stream, reader)
    return reader
