"""Lines per minute of each session file over the last hour, for the sparklines.

Counted from the file itself once a minute (new bytes since the last count, newlines
only), so it costs one read of what was appended; history starts when the dashboard first
shows a file."""

from __future__ import annotations

import logging
from collections import deque
from pathlib import Path

import anyio
from aiohttp import web

log = logging.getLogger("loon_supervisor.deploy")
MINUTES = 60
CHUNK = 1 << 20


class LineRates:
    def __init__(self, interval: float = 60.0) -> None:
        self.interval = interval
        self._offsets: dict[Path, int] = {}
        self._counts: dict[Path, deque[int]] = {}

    def watch(self, paths: list[Path]) -> None:
        for path in paths:
            if path not in self._offsets:
                try:
                    self._offsets[path] = path.stat().st_size
                except OSError:
                    self._offsets[path] = 0
                self._counts[path] = deque(maxlen=MINUTES)

    def per_minute(self, path: Path) -> list[int]:
        return list(self._counts.get(path, ()))

    def sample(self) -> None:
        for path, offset in list(self._offsets.items()):
            n = 0
            try:
                with open(path, "rb") as fh:
                    if fh.seek(0, 2) < offset:
                        offset = 0  # truncated or replaced: count from its start
                    fh.seek(offset)
                    while chunk := fh.read(CHUNK):
                        n += chunk.count(b"\n")
                        offset += len(chunk)
            except OSError:
                pass
            self._offsets[path] = offset
            self._counts[path].append(n)

    async def run(self) -> None:
        while True:
            await anyio.sleep(self.interval)
            await anyio.to_thread.run_sync(self.sample)


RATES_KEY: web.AppKey[LineRates] = web.AppKey("dash_rates", LineRates)
