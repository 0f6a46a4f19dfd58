"""One task per stream: read chunks, write whole lines to the stream's file in batches.

The reader appends to a buffer; the writer takes everything accumulated since its last write,
up to the last newline, and writes it in one call. Under load, batches grow by themselves.
At light load (nothing queued, the writer idle, a small batch) the reader writes the whole
lines itself, at once: the steady state costs one task wake-up per batch, not two. A partial last line is
held until its newline arrives, but written anyway once it is ``PARTIAL_DELAY`` old or
``PARTIAL_MAX`` bytes long (even while data keeps coming: progress dots), and always at end
of stream. Newline search only scans bytes not scanned before, so buffering stays linear.

A failing file (ENOSPC, EIO, ...) is reported once, in one sentence naming it, and its bytes
are dropped from then on; the stream keeps being read, so the other files and the teardown
carry on. ``written`` counts only bytes that reached the file (part of a failed write
included, exactly), never a dropped one: a position saved from it (streams/cursor.py) is
where a later reader (the final collection, a new logger) takes up the dropped bytes again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio

from loon_supervisor.sinks.files import DIRECT_LIMIT, FileSink, WriteFailed
from loon_supervisor.streams.cursor import FINGERPRINT

PARTIAL_DELAY = 0.25
PARTIAL_MAX = 64 * 1024
WRITE_MAX = 1 << 20  # bounds each write's copy of the buffer (memory while catching up)
# Back-pressure: above this many buffered bytes the reader waits for the writer, so a
# follower catching up faster than its file is written (a slow disk, 8 x 50 MiB at the
# rotation cap) leaves the bytes in the engine's pipe or the file instead of in memory.
BUF_MAX = 4 * WRITE_MAX
OnFault = Callable[[str], None]


class StreamCopy:
    """Copies one byte stream into one file; ``written`` counts bytes in the file,
    ``received`` bytes taken from the stream."""

    def __init__(self, name: str, path: Path, on_lines: Callable[[str, bytes], None] | None,
                 on_fault: OnFault | None = None) -> None:
        self.name = name
        self.path = path
        self.on_lines = on_lines
        self.on_fault = on_fault
        self.written = path.stat().st_size if path.exists() else 0
        self.taken = self.written
        self.failed: str | None = None
        self.recent = _file_tail(path, FINGERPRINT)  # the last bytes taken
        self.written_tail = self.recent  # the host file's last bytes
        self._buf = bytearray()
        self._scanned = 0  # bytes of _buf known to hold no newline
        self._partial_since: float | None = None
        # asyncio's Event, not anyio's: it can be cleared and re-used, where a new anyio Event
        # per batch (and anyio.current_time()) cost a third of the logger's CPU at 8 x 100
        # lines/s in backend look-ups (bench/profile_logger.py). anyio runs on asyncio here.
        self._wake = asyncio.Event()
        self._eof = False
        self._sink: FileSink | None = None  # set while write_loop runs
        self._room = asyncio.Event()  # set when the buffer is below BUF_MAX
        self._room.set()
        self._writing = False  # write_loop is inside a write: feed() must queue

    @property
    def received(self) -> int:
        """Bytes taken from the stream so far: where a re-attached stream must resume."""
        return self.taken

    def feed(self, data: bytes) -> None:
        if not data:
            return
        self.taken += len(data)
        self.recent = (self.recent + data[-FINGERPRINT:])[-FINGERPRINT:]
        sink = self._sink
        if (sink is not None and not self._buf and not self._writing and self.failed is None
                and len(data) <= DIRECT_LIMIT):
            # Nothing queued and the writer idle: write the whole lines now, from the
            # reader's task, instead of waking the writer's (one task wake-up less a batch).
            cut = data.rfind(b"\n") + 1
            if cut:
                self._write_now(sink, data if cut == len(data) else data[:cut])
                if cut == len(data):
                    return
                data = data[cut:]
        self._buf += data
        self._wake.set()
        if len(self._buf) > BUF_MAX and self._sink is not None and self.failed is None:
            self._room.clear()

    @property
    def full(self) -> bool:
        """The reader should ``await room()`` before reading more."""
        return not self._room.is_set()

    async def room(self) -> None:
        """Until the writer brought the buffer below ``BUF_MAX`` (or stopped writing)."""
        await self._room.wait()

    def feed_eof(self) -> None:
        self._eof = True
        self._wake.set()

    def _cut(self, now: float) -> int:
        """How many buffered bytes to write now: whole lines, or all of an old/big partial."""
        if self._eof:
            return len(self._buf)
        nl = self._buf.rfind(b"\n", self._scanned)
        self._scanned = len(self._buf)
        cut = 0
        if nl >= 0:
            cut = nl + 1
            self._scanned = len(self._buf) - cut
            self._partial_since = now if len(self._buf) > cut else None
        elif self._partial_since is None and self._buf:
            self._partial_since = now
        if len(self._buf) - cut >= PARTIAL_MAX or (
                self._partial_since is not None and now - self._partial_since >= PARTIAL_DELAY):
            cut = len(self._buf)
        if cut == len(self._buf):
            self._scanned = 0
            self._partial_since = None
        return cut

    async def write_loop(self, sink: FileSink) -> None:
        self._sink = sink
        try:
            await self._write_loop(sink)
        finally:
            self._sink = None
            self._room.set()  # nobody drains the buffer any more: never hold a reader

    async def _write_loop(self, sink: FileSink) -> None:
        clock = asyncio.get_running_loop().time  # what anyio.current_time() reads
        while True:
            if self._buf and not self._eof and self._partial_since is not None:
                left = self._partial_since + PARTIAL_DELAY - clock()
                with anyio.move_on_after(max(left, 0)):
                    await self._wake.wait()
            elif not self._eof:
                await self._wake.wait()
            self._wake.clear()
            cut = self._cut(clock())
            if cut > WRITE_MAX:  # bounded copies: whole lines of at most WRITE_MAX a write
                nl = self._buf.rfind(b"\n", 0, WRITE_MAX)
                cut = nl + 1 if nl >= 0 else WRITE_MAX
                self._scanned = 0
                self._wake.set()  # the rest follows at once
            if cut:
                chunk = bytes(self._buf[:cut])
                del self._buf[:cut]
                if len(self._buf) <= BUF_MAX:
                    self._room.set()
                self._writing = True
                try:
                    await self._write(sink, chunk)
                finally:
                    self._writing = False
                if self.on_lines is not None:
                    self.on_lines(self.name, chunk)
            if self._eof and not self._buf:
                return

    async def _write(self, sink: FileSink, chunk: bytes) -> None:
        if self.failed is None:
            try:
                await sink.write(chunk)
            except OSError as exc:
                self._count(chunk[:exc.done if isinstance(exc, WriteFailed) else 0])
                self._fail(exc)
            else:
                self._count(chunk)

    async def append(self, sink: FileSink, chunk: bytes) -> None:
        """Write ``chunk`` straight to ``sink`` (the final collection, after the follower
        and its buffer are gone): counted as taken and, if it reaches the file, written."""
        self.taken += len(chunk)
        self.recent = (self.recent + chunk[-FINGERPRINT:])[-FINGERPRINT:]
        await self._write(sink, chunk)
        if self.on_lines is not None:
            self.on_lines(self.name, chunk)

    def _count(self, done: bytes) -> None:
        if done:
            self.written += len(done)
            self.written_tail = (self.written_tail + done[-FINGERPRINT:])[-FINGERPRINT:]

    def _fail(self, exc: OSError) -> None:
        self.failed = f"cannot write {self.path}: {exc.strerror or exc}"
        self._room.set()  # the bytes are dropped from now on: the reader must not wait
        if self.on_fault is not None:
            self.on_fault(f"{self.failed}; its bytes from byte {self.written} on are left "
                          "where they are (the final collection or a restarted logger reads "
                          "them again if the disk has room then), the other files go on")

    def flush_now(self, sink: FileSink) -> None:
        """Write what is buffered at once (a cancelled copy must not lose received bytes)."""
        chunk, self._buf = bytes(self._buf), bytearray()
        self._scanned, self._partial_since = 0, None
        if chunk:
            self._write_now(sink, chunk)

    def _write_now(self, sink: FileSink, chunk: bytes) -> None:
        """Write on the caller's task (unless the file already failed), count, show."""
        if self.failed is None:
            try:
                sink.write_now(chunk)
            except OSError as exc:
                self._count(chunk[:exc.done if isinstance(exc, WriteFailed) else 0])
                self._fail(exc)
            else:
                self._count(chunk)
        if self.on_lines is not None:
            self.on_lines(self.name, chunk)


@asynccontextmanager
async def open_copy(copy: StreamCopy) -> AsyncIterator[StreamCopy]:
    """Open the file and run the writer while the body feeds ``copy``; finish at exit."""
    async with FileSink(copy.path) as sink:
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(copy.write_loop, sink)
                try:
                    yield copy
                finally:
                    copy.feed_eof()
        finally:
            copy.flush_now(sink)


def _file_tail(path: Path, n: int) -> bytes:
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, fh.seek(0, 2) - n))
            return fh.read()
    except OSError:
        return b""
