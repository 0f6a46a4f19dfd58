"""Where bytes end up: a session file per stream.

Files are opened unbuffered: each write is one syscall of a whole batch, so a line is in the
file (visible to ``tail -f``) as soon as the write returns, without a separate flush.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

import aiofiles
import anyio
from aiofiles.threadpool.binary import AsyncFileIO


class FileSink:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: AsyncFileIO | None = None

    async def __aenter__(self) -> FileSink:
        self._fh = await aiofiles.open(self.path, "ab", buffering=0)
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._fh is not None:
            with anyio.CancelScope(shield=True):  # close on every path, cancelled or not
                await self._fh.close()
            self._fh = None

    async def write(self, data: bytes) -> None:
        assert self._fh is not None
        view = memoryview(data)
        while view:
            n = await self._fh.write(view)
            view = view[n:]
