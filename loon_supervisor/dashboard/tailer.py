"""Live session files for the browser: one watcher per file however many viewers, and each
viewer reading the file from its own offset.

The dashboard follows the same host files ``tail -f`` reads (the logger's one engine stream
writes them); it never opens a second stream from the engine. A watcher stats its file every
``POLL_S`` and wakes the viewers when it grew. Viewers hold no queue: each reads what it has
not sent yet from the file, at most ``CHUNK`` bytes at a time, so a viewer that stops reading
(its TCP window full) only blocks its own coroutine, never the watcher, the other viewers or
the logger, and costs no memory beyond one chunk.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio

POLL_S = 0.1
CHUNK = 256 * 1024
MAX_LINE = 64 * 1024  # a longer line without its newline is sent in pieces of this size
TAIL_BYTES = 64 * 1024  # a new viewer starts with the last lines within this many bytes


@dataclass
class Watch:
    path: Path
    viewers: int = 0
    changed: anyio.Event = field(default_factory=anyio.Event)
    size: int = -1
    # offset -> (next offset, lines): viewers at the same place share one read and decode
    cache: OrderedDict[int, tuple[int, list[str]]] = field(default_factory=OrderedDict)
    # offset -> (next offset, the encoded event): single-file streams share the bytes too
    events: OrderedDict[int, tuple[int, bytes]] = field(default_factory=OrderedDict)


class Watchers:
    """One polling watcher per followed file, started by the first viewer and stopped with
    the last."""

    def __init__(self) -> None:
        self._watches: dict[Path, Watch] = {}
        self._tg: anyio.abc.TaskGroup | None = None
        self.closing = anyio.Event()

    async def run(self) -> None:
        async with anyio.create_task_group() as tg:
            self._tg = tg
            await self.closing.wait()
            for watch in self._watches.values():
                watch.changed.set()  # wake every viewer: its loop sees closing and ends
            tg.cancel_scope.cancel()

    @contextmanager
    def watching(self, path: Path) -> Iterator[Watch]:
        watch = self._watches.get(path)
        if watch is None:
            watch = self._watches[path] = Watch(path)
            if self._tg is not None:
                self._tg.start_soon(self._poll, watch)
        watch.viewers += 1
        try:
            yield watch
        finally:
            watch.viewers -= 1
            if watch.viewers == 0:
                self._watches.pop(path, None)
                watch.changed.set()

    async def _poll(self, watch: Watch) -> None:
        while watch.viewers > 0 and not self.closing.is_set():
            try:
                size = os.stat(watch.path).st_size
            except OSError:
                size = -1
            if size != watch.size:
                if size < watch.size:
                    watch.cache.clear()  # truncated or replaced: offsets mean other bytes
                    watch.events.clear()
                watch.size = size
                watch.changed.set()
                watch.changed = anyio.Event()
            await anyio.sleep(POLL_S)


def tail_offset(path: Path, nbytes: int = TAIL_BYTES) -> int:
    """The offset of the first whole line within the file's last ``nbytes``."""
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, 2)
            if size <= nbytes:
                return 0
            fh.seek(size - nbytes)
            data = fh.read(nbytes)
    except OSError:
        return 0
    cut = data.find(b"\n")
    return size - nbytes + cut + 1 if cut >= 0 else size


CACHE_ENTRIES = 32


@dataclass
class Reader:
    """One viewer's position in one file; ``read`` gives the new whole lines."""

    path: Path
    offset: int
    cache: OrderedDict[int, tuple[int, list[str]]] | None = None
    restarted: bool = False  # the last read found the file shorter and began at 0

    def read(self) -> list[str]:
        """:meth:`read_file`, shared with the other viewers at the same offset (the first
        one reads, the others take its lines)."""
        if self.cache is None:
            return self.read_file()
        hit = self.cache.get(self.offset)
        if hit is not None:
            self.offset = hit[0]
            return hit[1]
        start = self.offset
        lines = self.read_file()
        if lines and not self.restarted:  # a truncated file was read from 0: not cached
            self.cache[start] = (self.offset, lines)
            while len(self.cache) > CACHE_ENTRIES:
                self.cache.popitem(last=False)
        return lines

    def read_file(self) -> list[str]:
        """Whole lines appended since the last read (at most CHUNK bytes of them), invalid
        UTF-8 replaced; a line longer than MAX_LINE is cut into pieces. A file that shrank
        (truncated or replaced) is read again from its start."""
        try:
            with open(self.path, "rb") as fh:
                size = fh.seek(0, 2)
                self.restarted = size < self.offset
                if self.restarted:
                    self.offset = 0
                fh.seek(self.offset)
                data = fh.read(CHUNK)
        except OSError:
            return []
        end = data.rfind(b"\n")
        if end < 0:
            if len(data) < MAX_LINE:
                return []
            body = data[:MAX_LINE]
            self.offset += MAX_LINE
            return [body.decode("utf-8", errors="replace")]
        body = data[:end]
        self.offset += end + 1
        lines = []
        for raw in body.split(b"\n"):
            for i in range(0, max(len(raw), 1), MAX_LINE):
                lines.append(raw[i:i + MAX_LINE].decode("utf-8", errors="replace"))
        return lines
