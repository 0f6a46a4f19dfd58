"""The local fast path: the services' log directory is a host directory bind-mounted at the
container's log dir, read here directly.

With a local engine every byte a service writes already sits in this machine's page cache;
following it through an exec of ``tail`` makes dockerd, containerd and the shim copy each
byte again (their CPU was about ten times ours in bench/). :class:`HostDirSource` offers the
same operations as the exec source (stat, read at an offset, follow, size, stream) on the
host files instead: no exec, no in-container process, no engine copy.

Following waits on inotify (the ``inotify_simple`` library; one descriptor per source,
registered once with the asyncio loop, see :class:`_Hub`) and never polls while the file
exists; reads are ``os.pread`` of up to ``CHUNK`` bytes, and after a short read the next
one waits for inotify's word (no empty read per line). The bytes still pass through Python
because the
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

import asyncio
import errno
import os
import posixpath
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal

import anyio
from inotify_simple import INotify
from inotify_simple import flags as F

from loon_supervisor.streams.sources.base import Moved

CHUNK = 64 * 1024  # the copy's direct-write limit (sinks/files.py DIRECT_LIMIT)

KIND = "hostdir"
Event = Literal["replaced", "truncated"]
SNAPSHOT_TRIES = 5  # stat passes until the generations hold still (then the last one)


def _layout(found: dict[str, tuple[int, int]]) -> dict[str, int]:
    return {p: inode for p, (inode, _) in found.items()}

# A busy file's lines wait at most this long for the hub's next read (see _Hub). The fast
# path's p99 target (5 ms) bounds it; LOON_HOSTDIR_COALESCE_MS overrides it (0: off).
COALESCE = float(os.environ.get("LOON_HOSTDIR_COALESCE_MS", "3")) / 1000
SWEEP = 1.0  # seconds between the hub's safety re-reads (see _Hub)
POLL = 0.1  # seconds between re-reads of a file inotify cannot watch (its limits)

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
        self._hub: _Hub | None = None  # while any file is followed
        self._live: set[HostFollowedFile] = set()
        self._stopped = False  # the container stopped: followers end at their files' ends

    def describe(self) -> str:
        return f"host directory {self.host_dir} (inotify, no exec)"

    async def prepare(self, mark: str) -> int:
        """Nothing of ours runs in the container: no follower of a dead logger to stop."""
        return 0

    def container_stopped(self) -> None:
        """Nothing writes any more: every follower (and any opened later) reads its file to
        the end and ends there, as tail's exec stream ends with the container. Without this
        a follower here waited for inotify news that never came, and every teardown waited
        out the whole drain grace."""
        self._stopped = True
        for followed in list(self._live):
            followed.drain()

    def host_path(self, path: str) -> Path:
        """``<log_dir>/x`` -> ``<host_dir>/x``; a path outside the log dir is a bug."""
        rel = posixpath.relpath(posixpath.normpath(path), self.log_dir)
        if rel == ".." or rel.startswith("../") or posixpath.isabs(rel):
            raise ValueError(f"{path} is not inside the log directory {self.log_dir}")
        return self.host_dir / rel

    async def stat(self, paths: list[str]) -> dict[str, tuple[int, int]]:
        """(inode, size) of each of ``paths`` that exists, as one snapshot: a rotation that
        renames the generations while they are looked at one by one could show a file at
        neither its old name nor its new one (looked at ``.log.2`` just before it became
        ``.log.2``, ``.log.1`` just after it left): passes are repeated until two in a row
        name the same inodes."""
        found = self._stat_once(paths)
        for _ in range(SNAPSHOT_TRIES):
            again = self._stat_once(paths)
            if _layout(again) == _layout(found):
                return again
            found = again
        return found

    def _stat_once(self, paths: list[str]) -> dict[str, tuple[int, int]]:
        found: dict[str, tuple[int, int]] = {}
        for p in paths:
            try:
                st = os.stat(self.host_path(p))
            except OSError:
                continue
            found[p] = (st.st_ino, st.st_size)
        return found

    async def read_at(self, path: str, offset: int, count: int,
                      inode: int | None = None) -> bytes:
        """``count`` bytes of ``path`` from ``offset`` (fewer at its end; b"" if missing).
        With ``inode``: opened, then checked by ``fstat`` (the file held, not whatever the
        path names a moment later); another file or none there raises :class:`Moved`. A
        writer rotating many times a second renames every generation between a search's
        stat and its reads: read by name, a check could judge one file by another's bytes
        (a generation read twice, or skipped)."""
        try:
            fd = os.open(self.host_path(path), os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            if inode is not None:
                raise Moved(path) from None
            return b""
        try:
            if inode is not None and os.fstat(fd).st_ino != inode:
                raise Moved(path)
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
                          on_notice: Callable[[str], None], follow: bool = True,
                          inode: int | None = None) -> AsyncIterator[HostFollowedFile]:
        """Follow ``path`` from byte ``offset``; ``mark`` names no process here (nothing
        runs in the container). Closed, with its inotify watches, on every path; the last
        follower to close closes the shared inotify descriptor."""
        hub = None
        if follow:
            if self._hub is None:
                self._hub = _Hub(COALESCE)
            hub = self._hub
            hub.users += 1
        try:
            followed = HostFollowedFile(path, self.host_path(path), offset, on_notice, hub,
                                        self.chunk, inode)
            self._live.add(followed)
            if self._stopped:
                followed.drain()
            try:
                yield followed
            finally:
                self._live.discard(followed)
                followed.close()
        finally:
            if hub is not None:
                hub.users -= 1
                if hub.users == 0:
                    hub.close()
                    if self._hub is hub:
                        self._hub = None


class _Hub:
    """One inotify descriptor for every file a source follows, read at most once a tick.

    With a descriptor per follower, every line of every service woke the loop once (epoll,
    an inotify read, a task): ~9.5 % of a core at 8 x 100 lines/s, more than the docker CLI
    followers (py-spy: a quarter of it registering and unregistering the descriptor for
    each wait, a third the loop's own iteration). Here the descriptor is read as soon as it
    turns readable, so a quiet file's first line is handed on at once; when events come
    closer together than ``delay``, the hub stays deaf until the next multiple of ``delay``
    on the loop clock and then reads what gathered for all files in one go, so busy files
    share loop iterations and a line waits at most ``delay``. asyncio only, like the rest
    of the supervisor (aiodocker).
    """

    def __init__(self, delay: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._delay = delay
        self._by_wd: dict[int, set[HostFollowedFile]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self.users = 0
        self._last = float("-inf")  # when events were last read
        # Followers whose file or directory inotify cannot watch (the watch or instance
        # limit): woken every POLL seconds instead, as tail falls back to polling.
        self._polled: set[HostFollowedFile] = set()
        self._poll_timer: asyncio.TimerHandle | None = None
        self.no_inotify: str | None = None  # why this hub polls everything
        self._listening = False
        self._inotify: INotify | None = None
        try:
            self._inotify = INotify()
        except OSError as exc:  # EMFILE: fs.inotify.max_user_instances; ENFILE; ENOMEM
            self.no_inotify = _limit_text(exc, "fs.inotify.max_user_instances")
        else:
            self._fd = self._inotify.fileno()
            self._loop.add_reader(self._fd, self._read)
            self._listening = True
        # Once a second every follower re-reads its file, as tail -F re-checks: a wake-up
        # lost anywhere costs a second, never the stream. (CI once saw a stream stall at
        # the end of a burst: a follower spent a wake-up on a second wait; fixed in
        # HostFollowedFile._wait, with its test; this stays as the belt.)
        self._sweep_timer = self._loop.call_later(SWEEP, self._sweep)

    def _notify_all(self, suspect: bool) -> None:
        for users in list(self._by_wd.values()):
            for f in users:
                f.notify(suspect=suspect)

    def _sweep(self) -> None:
        self._notify_all(suspect=False)
        self._sweep_timer = self._loop.call_later(SWEEP, self._sweep)

    def watch(self, path: str, mask: int, follower: HostFollowedFile) -> int:
        """A watch for ``follower``; -1 when inotify cannot watch (then the follower is
        polled, and ``OSError`` says why: the caller says it once)."""
        if self._inotify is None:
            self.poll(follower)
            return -1
        # MASK_ADD: a directory shared by several followers keeps every follower's mask.
        try:
            wd = int(self._inotify.add_watch(path, mask | F.MASK_ADD))
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.ENOMEM):
                raise
            self.poll(follower)
            raise
        self._by_wd.setdefault(wd, set()).add(follower)
        return wd

    def poll(self, follower: HostFollowedFile) -> None:
        """Wake ``follower`` every ``POLL`` seconds (inotify cannot watch its file)."""
        self._polled.add(follower)
        if self._poll_timer is None:
            self._poll_timer = self._loop.call_later(POLL, self._poll)

    def _poll(self) -> None:
        for f in list(self._polled):
            f.notify(suspect=True)
        self._poll_timer = self._loop.call_later(POLL, self._poll) if self._polled else None

    def unwatch(self, wd: int, follower: HostFollowedFile) -> None:
        self._polled.discard(follower)
        if self._inotify is None or wd < 0:
            return
        users = self._by_wd.get(wd)
        if users is None:
            return
        users.discard(follower)
        if not users:
            del self._by_wd[wd]
            try:
                self._inotify.rm_watch(wd)
            except OSError:  # the kernel dropped it already (the file is gone)
                pass

    def _read(self, ticking: bool = False) -> bool:
        """Hand every queued event to its followers; False if there was none. Events
        closer together than a tick switch the hub to reading once per tick; sparser ones
        (one service logging now and then) are read as they come, one wake-up each, since a
        tick would add a second wake-up per line instead of saving one. A tick that finds
        events keeps the hub ticking."""
        now = self._loop.time()
        busy = ticking or now - self._last < self._delay
        assert self._inotify is not None
        events = self._inotify.read(timeout=0)
        if events:
            self._last = now
        for e in events:
            if e.mask & F.Q_OVERFLOW:  # events lost: every follower re-checks its file
                self._notify_all(suspect=True)
                continue
            for f in self._by_wd.get(e.wd, ()):
                f.notify(suspect=bool(e.mask & ~F.MODIFY))
            if e.mask & F.IGNORED:  # the kernel removed the watch (its file is gone)
                self._by_wd.pop(e.wd, None)
        if events and busy:
            if self._listening:
                self._loop.remove_reader(self._fd)
                self._listening = False
            tick = (now // self._delay + 1) * self._delay
            self._timer = self._loop.call_at(tick, self._tick)
        return bool(events)

    def _tick(self) -> None:
        self._timer = None
        self._read(ticking=True)
        if self._timer is None and not self._listening:  # quiet: wait for the next event
            self._loop.add_reader(self._fd, self._read)
            self._listening = True

    def close(self) -> None:
        self._sweep_timer.cancel()
        if self._poll_timer is not None:
            self._poll_timer.cancel()
            self._poll_timer = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._listening:
            self._loop.remove_reader(self._fd)
            self._listening = False
        if self._inotify is not None:
            self._inotify.close()


def _limit_text(exc: OSError, knob: str) -> str:
    """Why inotify cannot be used, and the kernel setting behind it."""
    what = os.strerror(exc.errno) if exc.errno else str(exc)
    return f"inotify cannot be used ({what}; the limit is {knob}); polling every {POLL:g}s"


class HostFollowedFile:
    """One followed host file: ``receive()`` gives bytes, None at the end (``follow=False``:
    at the file's current end; else after a rotation, with ``event`` set, or at the file's
    end once the container stopped, see :meth:`drain`)."""

    def __init__(self, path: str, host: Path, offset: int, on_notice: Callable[[str], None],
                 hub: _Hub | None, chunk: int, inode: int | None = None) -> None:
        self.event: Event | None = None
        self._path, self._host, self._pos = path, host, offset
        self._on_notice, self._hub, self._chunk = on_notice, hub, chunk
        self._follow = hub is not None
        self._fd = -1
        self._watches: list[int] = []
        self._suspect = True  # check for a rotation at the next end of data
        self._appended = False  # data came since the last inotify news
        self._at_end = False  # the last read was short: wait before reading again
        self._news = False  # inotify reported something since the last wait
        self._news_suspect = False  # ... and it was more than a write
        self._waiter: asyncio.Future[None] | None = None
        self._draining = False  # nothing writes any more: end at the end of the file
        self._polling = False  # inotify could not watch: the hub polls this file
        if hub is not None:
            # Watch first, then open: a write between the two is seen either way.
            self._watch(str(host.parent), _DIR_MASK)
        try:
            self._fd = os.open(host, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            self._end("replaced", f"cannot open '{path}' for reading: No such file or directory")
            return
        except OSError as exc:
            self._end("replaced", f"cannot open '{path}' for reading: {exc.strerror}")
            return
        self._ino = os.fstat(self._fd).st_ino  # open, then fstat: the file we hold
        if inode is not None and self._ino != inode:
            # Rotated between the follower's stat and this open: the offset belongs to
            # the other file. End now; the resync finds it (no byte read from this one).
            self._end("replaced", f"'{path}' was replaced before it was opened")
            return
        if hub is not None:
            # The inode we hold, not whatever the path names by now.
            self._watch(f"/proc/self/fd/{self._fd}", _FILE_MASK)

    def _watch(self, target: str, mask: int) -> None:
        """An inotify watch through the hub; when inotify cannot watch (its watch or
        instance limit), the hub polls this file instead and the notice says so once."""
        assert self._hub is not None
        try:
            wd = self._hub.watch(target, mask, self)
        except OSError as exc:  # ENOSPC: fs.inotify.max_user_watches
            if not self._polling:
                self._polling = True
                self._on_notice(f"{self._path}: "
                                + _limit_text(exc, "fs.inotify.max_user_watches"))
            return
        if wd < 0:
            if not self._polling and self._hub.no_inotify is not None:
                self._polling = True
                self._on_notice(f"{self._path}: {self._hub.no_inotify}")
            return
        self._watches.append(wd)

    def notify(self, suspect: bool) -> None:
        """The hub's word: the file or its directory changed."""
        self._news = True
        self._news_suspect |= suspect
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def drain(self) -> None:
        """The container stopped: read on to the end of the file, then end (None)."""
        self._draining = True
        self.notify(suspect=True)

    def _end(self, event: Event, notice: str) -> None:
        self.event = event
        self._on_notice(notice)

    async def receive(self) -> bytes | None:
        while self.event is None and self._fd >= 0:
            if self._at_end and not self._suspect and not self._draining:
                # A short read reached the end: nothing to read before inotify says so
                # (the watch predates the read, so a write since then is queued).
                await self._wait()
                continue
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
                self._at_end = self._follow
                return data
            if not self._follow:
                return None
            # Only an event other than a write, or a write that brought nothing (a
            # truncation), can mean a rotation: plain appends skip the two stat calls.
            if (self._suspect or not self._appended or self._draining) and \
                    self._check_at_end():
                return None
            if self._draining:  # read to the end of a file nobody writes any more
                return None
            await self._wait()
        return None

    async def _wait(self) -> None:
        """Until the hub has news of this file: anything but a write may be a rotation."""
        if not self._news:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        self._suspect, self._appended = self._news_suspect, False
        self._news = self._news_suspect = False
        # News means: read again. A short read's mark left standing here (after a read that
        # found nothing) spent the next wake-up on one more wait, and a burst's last
        # (merged) event was never read.
        self._at_end = False

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
        """Release the file and its inotify watches (idempotent)."""
        if self._hub is not None:
            for wd in self._watches:
                self._hub.unwatch(wd, self)
            self._watches.clear()
            self._hub.unwatch(-1, self)  # and its polling, if any
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
