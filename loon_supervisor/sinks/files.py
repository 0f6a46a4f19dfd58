"""Where bytes end up: a session file per stream.

Files are opened unbuffered in append mode: each write is one syscall of a whole batch, so
a line is in the file (visible to ``tail -f``) as soon as the write returns. Batches up to
``DIRECT_LIMIT`` are written with ``os.write`` on the event loop: appending a few KiB to a
local file lands in the page cache in microseconds, while a hop to aiofiles' worker thread
per batch cost the background logger half of its CPU at 8 x 100 lines/s (bench/: 33 % ->
17 % of a core). Larger batches go through a worker thread, 1 MiB a call.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from types import TracebackType

import aiofiles
import anyio
from aiofiles.threadpool.binary import AsyncFileIO

DIRECT_LIMIT = 64 * 1024


class WriteFailed(OSError):
    """A write that failed after ``done`` of its bytes reached the file (a disk that filled
    up mid-write): the caller counts exactly those."""

    def __init__(self, done: int, cause: OSError) -> None:
        super().__init__(cause.errno, cause.strerror)
        self.done = done


def _write(fd: int, data: memoryview) -> int:
    return os.write(fd, data)  # one seam: the model test fills the disk here


class FileSink:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: AsyncFileIO | None = None
        self._fd = -1

    async def __aenter__(self) -> FileSink:
        self._fh = await aiofiles.open(self.path, "ab", buffering=0)
        self._fd = self._fh.fileno()
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._fh is not None:
            with anyio.CancelScope(shield=True), contextlib.suppress(OSError):
                await self._fh.close()  # close on every path, cancelled or not
            self._fh = None

    def write_now(self, data: bytes) -> None:
        """Blocking write on the event loop: only for a last flush on a cancelled path.
        Raises :class:`WriteFailed` saying how much reached the file."""
        view = memoryview(data)
        done = 0
        while view:
            try:
                n = _write(self._fd, view)
            except OSError as exc:
                raise WriteFailed(done, exc) from exc
            done += n
            view = view[n:]

    async def write(self, data: bytes) -> None:
        """All of ``data``; :class:`WriteFailed` says how much reached the file if not."""
        assert self._fh is not None
        view = memoryview(data)
        done = 0
        while view:
            try:
                if len(view) <= DIRECT_LIMIT:
                    n = _write(self._fd, view)
                else:
                    n = await anyio.to_thread.run_sync(_write, self._fd, view[:1 << 20])
            except OSError as exc:
                raise WriteFailed(done, exc) from exc
            done += n
            view = view[n:]
