"""One task per stream: read chunks, write whole lines to the stream's file in batches.

The reader only appends to a buffer; the writer takes everything accumulated since its last
write, up to the last newline, and writes it in one call. Under load, batches grow by
themselves; at light load a line is written as soon as it arrives. A partial last line is
held until its newline arrives, written anyway after ``PARTIAL_DELAY`` of silence, and always
at end of stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio

from loon_supervisor.logs.sinks import FileSink

PARTIAL_DELAY = 0.25
Receive = Callable[[], Awaitable[bytes | None]]


class StreamCopy:
    """Copies one byte stream into one file; ``written`` counts bytes in the file."""

    def __init__(self, name: str, path: Path, on_lines: Callable[[str, bytes], None] | None
                 ) -> None:
        self.name = name
        self.path = path
        self.on_lines = on_lines
        self.written = path.stat().st_size if path.exists() else 0
        self._buf = bytearray()
        self._wake = anyio.Event()
        self._eof = False

    @property
    def received(self) -> int:
        """Bytes taken from the stream so far: where a re-attached stream must resume."""
        return self.written + len(self._buf)

    def feed(self, data: bytes) -> None:
        self._buf += data
        self._wake.set()

    def feed_eof(self) -> None:
        self._eof = True
        self._wake.set()

    async def write_loop(self, sink: FileSink) -> None:
        while True:
            timed_out = False
            if self._buf and not self._eof:  # a partial line is held: wait, but not forever
                with anyio.move_on_after(PARTIAL_DELAY) as scope:
                    await self._wake.wait()
                timed_out = scope.cancelled_caught
            elif not self._eof:
                await self._wake.wait()
            self._wake = anyio.Event()
            cut = len(self._buf) if self._eof or timed_out else self._buf.rfind(b"\n") + 1
            if cut:
                chunk = bytes(self._buf[:cut])
                del self._buf[:cut]
                await sink.write(chunk)
                self.written += len(chunk)
                if self.on_lines is not None:
                    self.on_lines(self.name, chunk)
            if self._eof and not self._buf:
                return


@asynccontextmanager
async def open_copy(copy: StreamCopy) -> AsyncIterator[StreamCopy]:
    """Open the file and run the writer while the body feeds ``copy``; finish at exit."""
    async with FileSink(copy.path) as sink, anyio.create_task_group() as tg:
        tg.start_soon(copy.write_loop, sink)
        try:
            yield copy
        finally:
            copy.feed_eof()


async def copy_stream(copy: StreamCopy, receive: Receive) -> None:
    """Pump ``receive`` into ``copy`` until end of stream, then finish writing."""
    async with open_copy(copy):
        while (data := await receive()) is not None:
            copy.feed(data)
