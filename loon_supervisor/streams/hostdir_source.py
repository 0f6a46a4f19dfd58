"""The local fast path: the services' log directory is a host directory bind-mounted at the
container's log dir, read here directly.

With a local engine every byte a service writes already sits in this machine's page cache;
following it through an exec of ``tail`` makes dockerd, containerd and the shim copy each
byte again (their CPU was about ten times ours in bench/). :class:`HostDirSource` offers the
same operations as the exec source (stat, read at an offset, follow, size, stream) on the
host files instead: no exec, no in-container process, no engine copy.

Following waits on inotify (the ``inotify_simple`` library, with anyio's ``wait_readable``
on its descriptor, so any anyio backend works) and never polls while the file exists; reads
are ``os.pread`` of up to ``CHUNK`` bytes. The bytes still pass through Python because the
session file is written whole lines at a time (StreamCopy); ``copy_file_range`` into the
session file would skip that and was measured in bench/fastpath.py not to matter at these
rates (see docs/log-faults.md). Reads of a local regular file are done on the event loop:
they come from the page cache and a thread hop per chunk costs more than the read.

A full chunk is cut after its last newline (the rest is read again with what follows): the
copy then gets whole lines in cache-sized pieces, which it writes without re-buffering. At
8 x 1M lines that took our CPU from ~0.12 s (1 MiB chunks, uncut) to ~0.09 s; what dominated
was copying and re-allocating multi-MiB buffers in StreamCopy, not the reads (py-spy).

Rotation is reported the way the exec source reports tail's notices: the followed inode
renamed or deleted away, or another file at the path -> ``event = "replaced"`` (after the
old file was read to its end); the file shorter than the position -> ``"truncated"``; a file
missing at open -> ``"replaced"``. The follower then resyncs (streams/follow.py).
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal

import anyio
from inotify_simple import INotify
from inotify_simple import flags as F

CHUNK = 64 * 1024  # the copy's direct-write limit (sinks/files.py DIRECT_LIMIT)
KIND = "hostdir"
Event = Literal["replaced", "truncated"]

_FILE_MASK = F.MODIFY | F.ATTRIB | F.MOVE_SELF | F.DELETE_SELF
_DIR_MASK = F.CREATE | F.MOVED_TO | F.MOVED_FROM | F.DELETE


class HostDirSource:
    """In-container log files read through the host directory bound at ``log_dir``.

    :param log_dir: the container's log directory (the image's ``org.loon.log-dir``)
    :param host_dir: the host directory bind-mounted there
    """

    kind = KIND

    def __init__(self, log_dir: str, host_dir: Path, chunk: int = CHUNK) -> None:
        self.log_dir = log_dir.rstrip("/") or "/"
        self.host_dir = host_dir
        self.chunk = chunk

    def describe(self) -> str:
        return f"host directory {self.host_dir} (inotify, no exec)"

    async def prepare(self, mark: str) -> int:
        """Nothing of ours runs in the container: no follower of a dead logger to stop."""
        return 0

    def host_path(self, path: str) -> Path:
        """``<log_dir>/x`` -> ``<host_dir>/x``; a path outside the log dir is a bug."""
        rel = posixpath.relpath(posixpath.normpath(path), self.log_dir)
        if rel == ".." or rel.startswith("../") or posixpath.isabs(rel):
            raise ValueError(f"{path} is not inside the log directory {self.log_dir}")
        return self.host_dir / rel

    async def stat(self, paths: list[str]) -> dict[str, tuple[int, int]]:
        """(inode, size) of each of ``paths`` that exists."""
        found: dict[str, tuple[int, int]] = {}
        for p in paths:
            try:
                st = os.stat(self.host_path(p))
            except OSError:
                continue
            found[p] = (st.st_ino, st.st_size)
        return found

    async def read_at(self, path: str, offset: int, count: int) -> bytes:
        """``count`` bytes of ``path`` from ``offset`` (fewer at its end; b"" if missing)."""
        try:
            fd = os.open(self.host_path(path), os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return b""
        try:
            return os.pread(fd, count, offset)
        finally:
            os.close(fd)

    async def file_size(self, path: str) -> int | None:
        try:
            return os.stat(self.host_path(path)).st_size
        except OSError:
            return None

    async def stream(self, path: str, offset: int) -> AsyncIterator[bytes]:
        """The bytes of ``path`` from ``offset`` to its current end, a chunk at a time
        (nothing held beyond one chunk); nothing if it is missing."""
        try:
            fd = os.open(self.host_path(path), os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return
        try:
            pos = offset
            while data := os.pread(fd, self.chunk, pos):
                pos += len(data)
                yield data
                await anyio.lowlevel.checkpoint()
        finally:
            os.close(fd)

    @asynccontextmanager
    async def open_follow(self, path: str, offset: int, mark: str,
                          on_notice: Callable[[str], None], follow: bool = True
                          ) -> AsyncIterator[HostFollowedFile]:
        """Follow ``path`` from byte ``offset``; ``mark`` names no process here (nothing
        runs in the container). Closed, with its inotify descriptor, on every path."""
        followed = HostFollowedFile(path, self.host_path(path), offset, on_notice, follow,
                                    self.chunk)
        try:
            yield followed
        finally:
            followed.close()


class HostFollowedFile:
    """One followed host file: ``receive()`` gives bytes, None at the end (``follow=False``:
    at the file's current end; else after a rotation, with ``event`` set)."""

    def __init__(self, path: str, host: Path, offset: int, on_notice: Callable[[str], None],
                 follow: bool, chunk: int) -> None:
        self.event: Event | None = None
        self._path, self._host, self._pos = path, host, offset
        self._on_notice, self._follow, self._chunk = on_notice, follow, chunk
        self._fd = -1
        self._inotify: INotify | None = None
        self._suspect = True  # check for a rotation at the next end of data
        self._appended = False  # data came since the last inotify wake-up
        if follow:
            # Watch first, then open: a write between the two is seen either way.
            self._inotify = INotify()
            self._inotify.add_watch(str(host.parent), _DIR_MASK)
        try:
            self._fd = os.open(host, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            self._end("replaced", f"cannot open '{path}' for reading: No such file or directory")
            return
        except OSError as exc:
            self._end("replaced", f"cannot open '{path}' for reading: {exc.strerror}")
            return
        self._ino = os.fstat(self._fd).st_ino
        if self._inotify is not None:
            # The inode we hold, not whatever the path names by now.
            self._inotify.add_watch(f"/proc/self/fd/{self._fd}", _FILE_MASK)

    def _end(self, event: Event, notice: str) -> None:
        self.event = event
        self._on_notice(notice)

    async def receive(self) -> bytes | None:
        while self.event is None and self._fd >= 0:
            data = os.pread(self._fd, self._chunk, self._pos)
            if data:
                self._appended = True
                if len(data) == self._chunk:  # more follows: end at a line (read again)
                    cut = data.rfind(b"\n") + 1
                    if cut:
                        data = data[:cut]
                    self._pos += len(data)
                    await anyio.lowlevel.checkpoint()  # a big file must not starve others
                    return data
                self._pos += len(data)
                return data
            if not self._follow:
                return None
            # Only an event other than a write, or a write that brought nothing (a
            # truncation), can mean a rotation: plain appends skip the two stat calls.
            if (self._suspect or not self._appended) and self._check_at_end():
                return None
            assert self._inotify is not None
            await anyio.wait_readable(self._inotify.fileno())
            events = self._inotify.read(timeout=0)
            self._suspect = any(e.mask & ~F.MODIFY for e in events)
            self._appended = False
        return None

    def _check_at_end(self) -> bool:
        """At the end of what the held file has: did it shrink, or is it no longer the file
        at the path? (tail -F's checks, on an event instead of a timer.)"""
        if os.fstat(self._fd).st_size < self._pos:
            self._end("truncated", f"{self._path}: file truncated")
            return True
        try:
            now = os.stat(self._host).st_ino
        except FileNotFoundError:
            self._end("replaced", f"'{self._path}' has become inaccessible: "
                                  "No such file or directory")
            return True
        if now != self._ino:
            self._end("replaced", f"'{self._path}' has been replaced; following new file")
            return True
        return False

    def close(self) -> None:
        """Release the file and the inotify descriptor (idempotent)."""
        if self._inotify is not None:
            self._inotify.close()
            self._inotify = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
