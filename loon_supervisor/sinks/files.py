"""Where bytes end up: a session file per stream.

Files are opened unbuffered in append mode: each write is one syscall of a whole batch, so
a line is in the file (visible to ``tail -f``) as soon as the write returns. Batches up to
``DIRECT_LIMIT`` are written with ``os.write`` on the event loop: appending a few KiB to a
local file lands in the page cache in microseconds, while a hop to aiofiles' worker thread
per batch cost the background logger half of its CPU at 8 x 100 lines/s (bench/: 33 % ->
17 % of a core). Larger batches still go through aiofiles' thread.
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
        """Blocking write on the event loop: only for a last flush on a cancelled path."""
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]

    async def write(self, data: bytes) -> None:
        assert self._fh is not None
        view = memoryview(data)
        while view:
            if len(view) <= DIRECT_LIMIT:
                n = os.write(self._fd, view)
            else:
                n = await self._fh.write(view)
            view = view[n:]
