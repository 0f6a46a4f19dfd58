"""A model-based test of the whole log core (issue 23): the real Followers, Cursor,
StreamCopy, FileSink, state file and final collection, against an inode-aware fake file
system, driven by hypothesis through random schedules of:

appends (with and without a trailing newline, lines up to 1 MiB, invalid UTF-8), bursts
that leave the follower generations behind, supervisord-style rotation (``.log.N`` deleted,
``.log.k`` renamed to ``.log.k+1``, ``.log`` to ``.log.1``), copytruncate, truncation in
place, inode reuse (a deleted file's inode goes to the next new file, as on ext4), a full
session disk (ENOSPC, also mid-write), position saves, kill -9 of the logger at any step
(host files and state file stay as they are at that instant: nothing is flushed, nothing
saved), a restart from the saved state, and at the end the container's stop with the final
collection (by the live logger, or by ``down`` for a dead one).

The invariant, checked after the final collection: each host file is, byte for byte, the
concatenation of everything the service wrote, except bytes that were deleted from disk
(their file unlinked or truncated) — and when any are missing, out.log says so. Each write
starts with a unique marker, so a copy that starts mid-line, doubles or reorders is caught.

Followers run on an event loop in a portal thread; each rule runs in that loop and then
lets it settle (every follower at the end of what it can read, every writer idle). The
partial-line delay is under the test's control: "time passes" is a rule.
"""

from __future__ import annotations

import errno
import itertools
import os
import random
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, Phase, seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)

from loon_supervisor.lifecycle import state as statefile
from loon_supervisor.sinks import files as filesink
from loon_supervisor.sinks.reporter import Reporter
from loon_supervisor.sinks.session import EventLog
from loon_supervisor.streams import follow, stream_copy
from loon_supervisor.streams.follow import Followers
from loon_supervisor.streams.sources.base import Moved

LOG_DIR = "/var/log/loon"
SERVICES = ("alpha", "beta")
BACKUPS = 2  # generations kept: small, so rotations delete files often
FIXED_SEED = 23
# Schedules per case: a quick run (`pytest -m "not engine"`) draws 30; the README's test
# command (scripts/test.sh, so CI) sets LOON_TEST_MODEL_EXAMPLES=2000, the full depth.
EXAMPLES = int(os.environ.get("LOON_TEST_MODEL_EXAMPLES", "30"))
# Every run (CI's too) runs the fixed seed and a fresh one, printed at the start and on
# failure; LOON_TEST_MODEL_SEED=<number> makes the second run replay that seed instead.
SEED = os.environ.get("LOON_TEST_MODEL_SEED", "random")


# -- the fake file system ------------------------------------------------------------


@dataclass(eq=False)
class File:
    inode: int
    data: bytearray = field(default_factory=bytearray)
    holders: int = 0  # followers holding it open (the kernel keeps its inode then)
    linked: int = 0
    epoch: int = 0  # truncations so far: bytes written after one are another content


class FS:
    """Paths to files with inodes; an unlinked file's inode is handed to the next new file
    (ext4 does that), unless a follower still holds it open."""

    def __init__(self) -> None:
        self.paths: dict[str, File] = {}
        self.changed = anyio.Event()
        self._next = itertools.count(1000)
        self._free: list[int] = []
        self.running = True

    def notify(self) -> None:
        self.changed.set()
        self.changed = anyio.Event()

    def create(self, path: str) -> File:
        f = File(self._free.pop() if self._free else next(self._next))
        self.link(path, f)
        return f

    def link(self, path: str, f: File) -> None:
        old = self.paths.get(path)
        if old is not None:
            self.unlink(path)
        self.paths[path] = f
        f.linked += 1

    def unlink(self, path: str) -> File | None:
        f = self.paths.pop(path, None)
        if f is not None:
            f.linked -= 1
            if f.linked == 0 and f.holders == 0:
                self._free.append(f.inode)
        return f

    def rename(self, old: str, new: str) -> None:
        f = self.unlink(old)
        if f is not None:
            if f.linked == 0 and f.holders == 0:
                self._free.remove(f.inode)
            self.link(new, f)

    def release(self, f: File) -> None:
        f.holders -= 1
        if f.linked == 0 and f.holders == 0:
            self._free.append(f.inode)


class Followed:
    """A follower of one fake file: ``hostdir`` holds the inode (reads it to its end after a
    rename, like the held descriptor); ``exec`` follows the name like ``tail -F`` and may
    end at a rename before it read the old file's last bytes."""

    def __init__(self, fs: FS, path: str, offset: int, follow: bool, by_name: bool,
                 chunk: int) -> None:
        if offset < 0:
            raise OSError(errno.EINVAL, f"negative offset {offset} for {path}")
        self.fs, self.path, self.pos, self.follow = fs, path, offset, follow
        self.by_name, self.chunk = by_name, chunk
        self.file = fs.paths.get(path)
        self.event: str | None = None
        if self.file is None:
            self.event = "replaced"
        else:
            self.file.holders += 1

    def close(self) -> None:
        if self.file is not None:
            self.fs.release(self.file)
            self.file = None

    async def receive(self) -> bytes | None:
        while self.event is None and self.file is not None:
            f = self.file
            moved = self.fs.paths.get(self.path) is not f
            if self.follow and self.by_name and moved:
                self.event = "replaced"
                return None
            if self.pos < len(f.data):
                left = len(f.data) - self.pos  # a big backlog in 64 KiB reads, as hostdir
                n = self.chunk if left < 64 * self.chunk else max(self.chunk, 65536)
                data = bytes(f.data[self.pos:self.pos + n])
                self.pos += len(data)
                return data
            if self.pos > len(f.data):
                self.event = "truncated"
                return None
            if not self.follow:
                return None
            if moved:
                self.event = "replaced"
                return None
            if not self.fs.running:
                return None
            await self.fs.changed.wait()
        return None


class Source:
    """The LogSource protocol over :class:`FS` (both follow styles)."""

    kind = "fake"

    def __init__(self, fs: FS, by_name: bool, chunk: int) -> None:
        self.fs, self.by_name, self.chunk = fs, by_name, chunk

    def describe(self) -> str:
        return "the model's file system"

    async def prepare(self, mark: str) -> int:
        return 0

    async def stat(self, paths: list[str]) -> dict[str, tuple[int | None, int]]:
        return {p: (f.inode, len(f.data)) for p in paths if (f := self.fs.paths.get(p))}

    async def read_at(self, path: str, offset: int, count: int,
                      inode: int | None = None) -> bytes:
        if offset < 0:
            raise OSError(errno.EINVAL, f"negative offset {offset} for {path}")
        f = self.fs.paths.get(path)
        if inode is not None and (f is None or f.inode != inode):
            raise Moved(path)  # as the host directory's open-then-fstat does
        return b"" if f is None else bytes(f.data[offset:offset + count])

    def container_stopped(self) -> None:
        self.fs.running = False
        self.fs.notify()

    @asynccontextmanager
    async def open_follow(self, path: str, offset: int, mark: str,
                          on_notice: Callable[[str], None], follow: bool = True,
                          inode: int | None = None) -> AsyncIterator[Followed]:
        followed = Followed(self.fs, path, offset, follow, self.by_name, self.chunk)
        if inode is not None and followed.file is not None and followed.file.inode != inode:
            followed.close()  # not the file the offset belongs to (as the real sources)
            followed.event = "replaced"
        try:
            yield followed
        finally:
            followed.close()

    async def file_size(self, path: str) -> int | None:
        f = self.fs.paths.get(path)
        return None if f is None else len(f.data)

    async def stream(self, path: str, offset: int) -> AsyncIterator[bytes]:
        if offset < 0:
            raise OSError(errno.EINVAL, f"negative offset {offset} for {path}")
        f = self.fs.paths.get(path)
        if f is None:
            return
        pos = offset
        while pos < len(f.data):
            data = bytes(f.data[pos:pos + self.chunk])
            pos += len(data)
            yield data


# -- what the services wrote -----------------------------------------------------------


@dataclass(eq=False)
class Chunk:
    data: bytes
    home: File | None  # the file holding it now; None once it was deleted from disk
    origin: File | None = None  # the file holding it when it was deleted
    epoch: int = 0  # its file's truncations before it was written (see _check)

    def __post_init__(self) -> None:
        self.origin = self.home
        self.epoch = self.home.epoch if self.home is not None else 0


class Disk:
    """The session disk: full or not (FileSink's one write seam)."""

    def __init__(self) -> None:
        self.full = False
        self.room = 0  # bytes that still fit once full (a write cut short)
        # Held by a write and by kill -9's snapshot: the writes run in worker threads, and
        # a snapshot taken between a write's start and end is no instant a real kill knows.
        self.lock = threading.Lock()

    def write(self, fd: int, data: memoryview) -> int:
        with self.lock:
            return self._write(fd, data)

    def _write(self, fd: int, data: memoryview) -> int:
        if self.full:
            if self.room <= 0:
                raise OSError(errno.ENOSPC, "No space left on device")
            n = os.write(fd, data[:self.room])
            self.room -= n
            return n
        return os.write(fd, data)


def _no_output(fs: FS) -> Callable[[int], AsyncIterator[bytes]]:
    """The container's own output (not modelled): a stream that ends when the container
    stops, so its follower never polls a finished stream (real seconds per example)."""
    async def output(skip: int) -> AsyncIterator[bytes]:
        while fs.running:
            await fs.changed.wait()
        return
        yield b""  # pragma: no cover
    return output


# Lines up to 1 MiB, seldom long: a long line costs real copying at every step, and what it
# tests (a write split over several reads and writes) does not need many of them.
_long_lines = st.integers(0, 15).flatmap(
    lambda k: st.integers((1 << 20) - 4096, 1 << 20) if k == 0 else st.integers(41, 1 << 12)
).map(lambda n: b"L" * (n - 1) + b"\n")


# -- the machine ---------------------------------------------------------------------


class LogCore(RuleBasedStateMachine):
    portal: BlockingPortal
    root: Path
    disk: Disk

    def __init__(self) -> None:
        super().__init__()
        self.fs = FS()
        self.session = self.root / f"s{next(_runs)}"
        self.session.mkdir()
        self.events = EventLog(self.session / "out.log")
        self.say = Reporter(self.events, None)
        self.written: dict[str, list[Chunk]] = {s: [] for s in SERVICES}
        self.ids = itertools.count()
        self.followers: Followers | None = None
        self.scope: anyio.CancelScope | None = None
        self.done: anyio.Event | None = None
        self.crash: BaseException | None = None
        self.by_name = False
        self.switch_saves = True
        self.name = self.session.name
        self.disk.full = False
        stream_copy.PARTIAL_DELAY = 1e9  # a partial line waits until "time passes"

    # -- set-up
    @initialize(by_name=st.booleans(), chunk=st.sampled_from([7, 64, 65536]),
                switch_saves=st.just(True))  # False: see SCHEDULES "no save ..."
    def start(self, by_name: bool, chunk: int, switch_saves: bool) -> None:
        """``switch_saves`` False: every kill -9 falls between a file switch and its save
        (Deployment saves soon after a switch, in a worker thread): a restarted logger has
        only the position saved before the switch, and carries it across the rotation."""
        self.by_name = by_name
        self.switch_saves = switch_saves
        self.source = Source(self.fs, by_name, chunk)
        statefile.save(statefile.DeploymentState(
            name=self.name, cid="c1", session=self.session, image="model", services=SERVICES,
            log_dir=LOG_DIR, status_command=None, url="", stop_timeout=1,
            **_supported(statefile.DeploymentState, log_backups=BACKUPS)))
        self._start_logger()

    def _new_followers(self) -> Followers:
        state = statefile.load(self.name)
        assert state is not None
        followers = Followers(source=self.source, log_dir=LOG_DIR, services=SERVICES,
                              session=self.session, say=self.say, output=_no_output(self.fs),
                              still_running=self._running, mark=self.name,
                              saved=dict(state.positions),
                              **_supported(Followers, generations=BACKUPS))
        # Deployment saves soon after a file switch; here at once, or never (then a kill
        # always falls before that save)
        if self.switch_saves:
            followers.on_switch = lambda: statefile.update(self.name, "c1",
                                                           positions=followers.positions())
        return followers

    async def _running(self) -> bool:
        return self.fs.running

    def _start_logger(self) -> None:
        async def run(task_status: Any) -> None:
            followers = self._new_followers()
            self.followers = followers
            self.done = anyio.Event()
            try:
                with anyio.CancelScope() as scope:
                    self.scope = scope
                    async with anyio.create_task_group() as tg:
                        await followers.start(tg)
                        self._save()  # the logger's attached(): positions saved at once
                        task_status.started()
            except BaseException as exc:  # noqa: BLE001 - a crash of the core is the finding
                self.crash = exc
                raise
            finally:
                self.done.set()

        self.portal.start_task_soon(self._guard, run)  # type: ignore[arg-type]
        self._settle()

    async def _guard(self, run: Any) -> None:
        started = anyio.Event()

        class Status:
            def started(self, value: object = None) -> None:
                started.set()

        try:
            await run(Status())
        except BaseException:  # noqa: BLE001
            pass

    def _save(self) -> None:
        if self.followers is not None:
            statefile.update(self.name, "c1", positions=self.followers.positions())

    def _call(self, fn: Callable[[], None]) -> None:
        async def body() -> None:
            fn()
            self.fs.notify()
        self.portal.call(body)
        self._settle()

    def _settle(self) -> None:
        async def settle() -> None:
            """Until nothing moves. Real time passes only while a write runs in a worker
            thread or a service's file is missing (the follower polls for it)."""
            last = None
            quiet = 0
            for _ in range(2000):
                for _ in range(10):
                    await anyio.sleep(0)
                f = self.followers
                busy = f is not None and any(c._writing for c in f.copies.values())
                missing = f is not None and any(
                    f"{LOG_DIR}/{s}.log" not in self.fs.paths for s in SERVICES)
                now = (tuple((c.received, c.written) for c in f.copies.values())
                       if f is not None else None)
                quiet = quiet + 1 if now == last and not busy else 0
                if quiet >= (3 if missing else 1):
                    return
                last = now
                if busy or missing:
                    await anyio.sleep(0.001)
        self.portal.call(settle)
        if self.crash is not None:
            raise self.crash

    @property
    def alive(self) -> bool:
        return self.followers is not None and self.done is not None and not self.done.is_set()

    # -- the services
    def _chunk(self, payload: bytes) -> bytes:
        """A write that starts with a unique marker and ends with its number, its number
        also every 32 bytes of a long one: services' lines differ (timestamps), and 64
        identical bytes would fool any fingerprint (docs/log-faults.md, "Limits")."""
        n = next(self.ids)
        end = b"\n" if payload.endswith(b"\n") else b""
        body = payload[:len(payload) - len(end)]
        if len(body) > 32:
            tag = b"%d" % n
            body = tag.join(body[i:i + 32] for i in range(0, len(body), 32))
        return b"\x00<%d>" % n + body + b" #%d" % n + end

    def _append(self, svc: str, data: bytes) -> None:
        path = f"{LOG_DIR}/{svc}.log"
        f = self.fs.paths.get(path) or self.fs.create(path)
        f.data += data
        self.written[svc].append(Chunk(data, f))

    @rule(svc=st.sampled_from(SERVICES),
          payload=st.one_of(
              st.binary(max_size=40).map(lambda b: b.replace(b"\x00", b"") + b"\n"),
              st.binary(max_size=40).map(lambda b: b.replace(b"\x00", b"")),  # no newline
              st.sampled_from([b"\xff\xfe bad utf-8 \xc3\x28\n", b"caf\xe9", b"\x80\n\n\n"]),
              _long_lines,
          ))
    def append(self, svc: str, payload: bytes) -> None:
        data = self._chunk(payload)
        self._call(lambda: self._append(svc, data))

    def _rotate(self, svc: str) -> None:
        base = f"{LOG_DIR}/{svc}.log"
        for c in self.fs.paths.get(f"{base}.{BACKUPS}") and [self.fs.paths[f"{base}.{BACKUPS}"]] or []:
            self._destroyed(c)
        self.fs.unlink(f"{base}.{BACKUPS}")
        for k in range(BACKUPS - 1, 0, -1):
            self.fs.rename(f"{base}.{k}", f"{base}.{k + 1}")
        self.fs.rename(base, f"{base}.1")
        self.fs.create(base)  # supervisord reopens at once

    def _destroyed(self, f: File) -> None:
        for chunks in self.written.values():
            for c in chunks:
                if c.home is f:
                    c.origin, c.home = f, None

    @rule(svc=st.sampled_from(SERVICES))
    def rotate(self, svc: str) -> None:
        self._call(lambda: self._rotate(svc))

    @rule(svc=st.sampled_from(SERVICES), n=st.integers(1, BACKUPS + 1),
          size=st.integers(1, 300))
    def burst(self, svc: str, n: int, size: int) -> None:
        """Appends and rotations with no chance for the follower to read in between: it
        falls ``n`` generations behind (defect 4, live)."""
        def body() -> None:
            for _ in range(n):
                self._append(svc, self._chunk(b"b" * size + b"\n"))
                self._rotate(svc)
            self._append(svc, self._chunk(b"after burst\n"))
        self._call(body)

    @rule(svc=st.sampled_from(SERVICES))
    def copytruncate(self, svc: str) -> None:
        base = f"{LOG_DIR}/{svc}.log"

        def body() -> None:
            f = self.fs.paths.get(base)
            if f is None:
                return
            old = self.fs.paths.get(f"{base}.{BACKUPS}")
            if old is not None:
                self._destroyed(old)
            self.fs.unlink(f"{base}.{BACKUPS}")
            for k in range(BACKUPS - 1, 0, -1):
                self.fs.rename(f"{base}.{k}", f"{base}.{k + 1}")
            copy = self.fs.create(f"{base}.1")
            copy.data += f.data
            for c in self.written[svc]:
                if c.home is f:
                    c.home = c.origin = copy
                    c.epoch = copy.epoch
            del f.data[:]
            f.epoch += 1
        self._call(body)

    @rule(svc=st.sampled_from(SERVICES))
    def truncate(self, svc: str) -> None:
        """In place (``supervisorctl clear``); later appends regrow it."""
        def body() -> None:
            f = self.fs.paths.get(f"{LOG_DIR}/{svc}.log")
            if f is not None:
                self._destroyed(f)
                del f.data[:]
                f.epoch += 1
        self._call(body)

    @rule(svc=st.sampled_from(SERVICES))
    def delete_and_recreate(self, svc: str) -> None:
        """The file is removed and a new one made at once: with no follower holding it, the
        new file gets the old inode (inode reuse)."""
        def body() -> None:
            base = f"{LOG_DIR}/{svc}.log"
            f = self.fs.paths.get(base)
            if f is not None:
                self._destroyed(f)
                self.fs.unlink(base)
            self.fs.create(base)
        self._call(body)

    # -- the logger and its disk
    @rule()
    def time_passes(self) -> None:
        """The partial-line delay runs out: held partial lines are written."""
        def body() -> None:
            stream_copy.PARTIAL_DELAY = 0.0
            if self.followers is not None:
                for c in self.followers.copies.values():
                    c._wake.set()
        self._call(body)
        stream_copy.PARTIAL_DELAY = 1e9

    @precondition(lambda self: self.alive)
    @rule()
    def save_positions(self) -> None:
        self.portal.call(lambda: self._async(self._save))

    async def _async(self, fn: Callable[[], None]) -> None:
        fn()

    @rule(room=st.integers(0, 100))
    def disk_fills(self, room: int) -> None:
        self.disk.full, self.disk.room = True, room

    @rule()
    def disk_freed(self) -> None:
        self.disk.full = False

    @precondition(lambda self: self.alive)
    @rule()
    def kill_9(self) -> None:
        """The logger dies at once: host files and state file stay exactly as they are now
        (no flush of a buffered partial line, no last save). The host files and the state
        file are taken at one instant, as a real kill -9 leaves them: no host write and no
        state save runs while they are read (read one after the other, a save between them
        could count host bytes the snapshot does not have, which no real kill produces)."""
        with self.disk.lock, statefile._writing(self.name):
            host = {p: p.read_bytes() for p in self.session.glob("*.log")}
            state = statefile.state_path(self.name).read_bytes()

        async def kill() -> None:
            assert self.scope is not None and self.done is not None
            self.scope.cancel()
            await self.done.wait()
        self.portal.call(kill)
        for p in self.session.glob("*.log"):
            if p in host:
                with open(p, "r+b") as fh:
                    fh.truncate(len(host[p]))
            else:
                p.unlink()
        statefile.state_path(self.name).write_bytes(state)
        self.followers = None

    @precondition(lambda self: not self.alive)
    @rule()
    def restart(self) -> None:
        """A new logger (``loon attach``) from the saved state."""
        self._start_logger()

    # -- the end: the container stops, the rest is collected, the files are compared
    def teardown(self) -> None:
        try:
            if self.crash is None and hasattr(self, "source"):
                self._finish()
                self._check()
        finally:
            self.events.close()

    def _finish(self) -> None:
        self.disk.full = False
        stream_copy.PARTIAL_DELAY = 0.0

        async def stop() -> None:
            self.fs.running = False
            self.fs.notify()
            if self.alive:
                assert self.followers is not None and self.done is not None
                if hasattr(self.followers, "container_stopped"):
                    self.followers.container_stopped()
                else:  # older code (the note's check against it)
                    self.followers.stopping = True
                with anyio.fail_after(10):
                    await self.done.wait()
                if self.crash is not None:
                    return
                await self.followers.collect()  # Deployment.follow's own collection
            else:  # `down` for a dead logger: Deployment.collect from the saved positions
                followers = self._new_followers()
                await followers.collect()
        self.portal.call(stop)
        if self.crash is not None:
            raise self.crash

    def _check(self) -> None:
        out = (self.session / "out.log").read_text(errors="replace")
        for svc in SERVICES:
            path = self.session / f"{svc}.log"
            host = path.read_bytes() if path.exists() else b""
            chunks = self.written[svc]
            full = b"".join(c.data for c in chunks)
            if host == full:
                continue
            skipped = aligns(host, chunks)
            assert skipped is not None, (
                f"{svc}.log is not what {svc} wrote minus deleted bytes:\n"
                f"host  {host[:300]!r}...{host[-300:]!r} ({len(host)} bytes)\n"
                f"wrote {full[:300]!r}...{full[-300:]!r} ({len(full)} bytes)\n"
                f"deleted chunks: {[c.data[:12] for c in chunks if c.home is None]}\n"
                f"out.log:\n{out}")
            # Named in out.log whenever the logger could have seen the loss: some byte of the
            # lost bytes' file, as it was before they were deleted (same file, no truncation
            # in between), reached the host. Then the logger knew that file by inode and
            # fingerprint and finds it gone or changed. Otherwise nothing on disk or in the
            # state file tells the loss apart from nothing written at all: a file created,
            # written, truncated (or deleted) and regrown while the logger was dead, before
            # it had read a byte of that content, leaves no trace to name it by.
            present = {(id(c.origin), c.epoch) for i, c in enumerate(chunks)
                       if skipped.get(i, len(c.data)) > 0}
            if any((id(chunks[i].origin), chunks[i].epoch) in present for i in skipped):
                assert f"{svc}: " in out and ("are gone" in out or "are lost" in out), (
                    f"{svc}.log misses bytes that out.log does not name:\n{out}")


def aligns(host: bytes, chunks: list[Chunk]) -> dict[int, int] | None:
    """Is ``host`` the chunks in order, where a deleted chunk may be missing or cut short
    (read up to some byte, then its file was deleted)? The chunks left out or cut short,
    each with how many of its first bytes the host has, or None. Chunks start with a unique
    marker and hold no other NUL byte, so a chunk's prefix can only continue into another
    chunk's marker."""
    seen: set[tuple[int, int]] = set()
    stack: list[tuple[int, int, tuple[tuple[int, int], ...]]] = [(0, 0, ())]
    while stack:
        i, h, cut = stack.pop()
        if (i, h) in seen:
            continue
        seen.add((i, h))
        if i == len(chunks):
            if h == len(host):
                return dict(cut)
            continue
        c = chunks[i].data
        if chunks[i].home is None:
            lcp = 0
            limit = min(len(c), len(host) - h)
            while lcp < limit:  # longest common prefix, a block at a time
                n = min(4096, limit - lcp)
                if host[h + lcp:h + lcp + n] == c[lcp:lcp + n]:
                    lcp += n
                    continue
                while lcp < limit and host[h + lcp] == c[lcp]:
                    lcp += 1
                break
            for p in {0, lcp, *range(min(lcp, 16) + 1)}:
                if p < len(c):
                    stack.append((i + 1, h + p, (*cut, (i, p))))
        if host.startswith(c, h):
            stack.append((i + 1, h + len(c), cut))
    return None


def _supported(cls: type, **kw: Any) -> dict[str, Any]:
    """The keywords ``cls`` has (the model also runs against older code: see the note)."""
    return {k: v for k, v in kw.items() if k in cls.__dataclass_fields__}  # type: ignore[attr-defined]


_runs = itertools.count()


@pytest.fixture
def portal() -> Iterator[BlockingPortal]:
    with start_blocking_portal(backend="asyncio") as p:
        yield p


def _machine(portal: BlockingPortal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
             name: str) -> type[LogCore]:
    """The machine class, wired to ``portal`` and a fresh project root, with the product's
    waits made short: a missing file polled every 0.5 ms, no fsync of the state file (no
    power loss in the model; thousands of saves would cost minutes)."""
    monkeypatch.setenv("LOON_PROJECT_ROOT", str(tmp_path))
    disk = Disk()
    monkeypatch.setattr(filesink, "_write", disk.write, raising=False)
    monkeypatch.setattr(stream_copy, "PARTIAL_DELAY", stream_copy.PARTIAL_DELAY)
    monkeypatch.setattr(follow, "MISSING_POLL", 0.0005)
    monkeypatch.setattr(statefile, "DURABLE", False, raising=False)
    machine = type(name, (LogCore,), {})
    machine.portal, machine.root, machine.disk = portal, tmp_path, disk
    return machine


def _run(portal: BlockingPortal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
         examples: int, chosen: int) -> None:
    machine = seed(chosen)(_machine(portal, tmp_path, monkeypatch, f"LogCoreSeed{chosen}"))
    run_state_machine_as_test(machine, settings=settings(
        max_examples=examples, stateful_step_count=20, deadline=None, database=None,
        print_blob=True, suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate, Phase.shrink]))


def _named(run: Callable[[], None], chosen: int) -> None:
    """Run; a failure says its seed and how to replay it."""
    try:
        run()
    except BaseException as exc:
        note = (f"log core model FAILED with seed {chosen}: rerun with "
                f"LOON_TEST_MODEL_SEED={chosen}")
        print(note)
        exc.add_note(note)
        raise


def test_the_log_core_loses_doubles_and_crashes_on_no_schedule(
        portal: BlockingPortal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fixed-seed run the default suite and CI rely on: the same schedules every time
    (``LOON_TEST_MODEL_EXAMPLES`` of them: 30 by default, 2,000 in scripts/test.sh and CI)."""
    _named(lambda: _run(portal, tmp_path, monkeypatch, EXAMPLES, FIXED_SEED), FIXED_SEED)


def test_the_log_core_model_with_a_random_seed(
        portal: BlockingPortal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fresh schedules every run, beside the fixed seed's: a seed drawn now (a failure
    names it and how to replay it), or the one LOON_TEST_MODEL_SEED names."""
    chosen = random.SystemRandom().randrange(1 << 32) if SEED == "random" else int(SEED)
    print(f"log core model: seed {chosen} (replay with LOON_TEST_MODEL_SEED={chosen})")
    _named(lambda: _run(portal, tmp_path, monkeypatch, EXAMPLES, chosen), chosen)


# Schedules the model found on the way to green, each a defect of the core fixed then (the
# fixed seed may no longer draw them once the rules change): replayed by name.
A, B = SERVICES
_HELD = {"by_name": False, "chunk": 7, "switch_saves": True}
SCHEDULES: dict[str, list[tuple[str, dict[str, Any]]]] = {
    # a save made by a restarted logger before its first catch-up settled (nothing taken
    # yet) named the saved file at an offset past its end and dropped the saved chain; after
    # rotations deleted that file the final collection read the next one again (double;
    # a fresh seed found it, about 1 run in 4 of this schedule failed before the fix)
    "kill -9 while a restarted logger catches up over a chain": [
        ("copytruncate", {"svc": B}), ("kill_9", {}), ("copytruncate", {"svc": B}),
        ("copytruncate", {"svc": B}), ("restart", {}), ("kill_9", {}), ("restart", {}),
        ("copytruncate", {"svc": B}), ("kill_9", {}),
        ("burst", {"n": 1, "size": 132, "svc": A}), ("restart", {}),
        ("burst", {"n": 1, "size": 265, "svc": B}), ("kill_9", {}), ("restart", {}),
        ("kill_9", {}), ("burst", {"n": 2, "size": 225, "svc": B}),
        ("burst", {"n": 1, "size": 1, "svc": A})],
    # a rotated file known without its last bytes passed for any file of the same size
    # with its (reused) inode: a live follower generations behind skipped one
    "reused inode, same size, live": [
        ("burst", {"n": 1, "size": 1, "svc": A}), ("burst", {"n": 3, "size": 1, "svc": A})],
    # files read but dropped on a full disk stayed "read to their end": the final
    # collection skipped the copytruncate copy holding the dropped bytes
    "full disk, then copytruncate at byte 0": [
        ("kill_9", {}), ("disk_fills", {"room": 0}), ("append", {"payload": b"\n", "svc": A}),
        ("restart", {}), ("copytruncate", {"svc": A})],
    # ... yet they still tell a reused inode apart (the copy got the deleted file's inode)
    "full disk, rotations, copytruncate onto a reused inode": [
        ("disk_fills", {"room": 0}), ("burst", {"n": 2, "size": 1, "svc": A}),
        ("copytruncate", {"svc": A})],
    # a restarted logger took a file with the saved inode for the saved file at offset 0
    "full disk, rotations, kill -9, copytruncate onto a reused inode": [
        ("disk_fills", {"room": 0}), ("burst", {"n": 2, "size": 1, "svc": A}),
        ("kill_9", {}), ("copytruncate", {"svc": A})],
    # the file it reads now had the inode of a file read long before: taken for reused
    "full disk mid-line, the followed file has an old file's inode": [
        ("burst", {"n": 1, "size": 1, "svc": A}), ("disk_fills", {"room": 79}),
        ("burst", {"n": 3, "size": 31, "svc": A})],
    # a restarted logger read again a generation the host had whole (double)
    "kill -9 after rotations, the current file deleted and recreated": [
        ("burst", {"n": 2, "size": 1, "svc": A}), ("kill_9", {}),
        ("delete_and_recreate", {"svc": A})],
    # an empty followed file rotated away; its inode handed to a newer one: older lost
    "kill -9 on an empty file, rotations hand its inode on": [
        ("delete_and_recreate", {"svc": A}), ("kill_9", {}), ("rotate", {"svc": A}),
        ("burst", {"n": 3, "size": 1, "svc": A})],
    # one byte written, then a copy matched by that byte alone (every line starts alike)
    "one byte on the host, then copytruncate": [
        ("disk_fills", {"room": 1}), ("burst", {"n": 2, "size": 1, "svc": A}),
        ("copytruncate", {"svc": A})],
    # a resumed cursor kept its saved chain after moving on: its own file taken for reused
    "restart, then rotations onto a reused inode": [
        ("append", {"payload": b"", "svc": B}), ("rotate", {"svc": B}), ("kill_9", {}),
        ("restart", {}), ("burst", {"n": 2, "size": 1, "svc": B})],
    # an older file known by an inode the saved chain's newest file has since
    "kill -9 after the follower reached a reused inode": [
        ("burst", {"n": 1, "size": 1, "svc": B}), ("burst", {"n": 2, "size": 1, "svc": B}),
        ("kill_9", {}), ("burst", {"n": 1, "size": 1, "svc": B})],
    # kill -9 before the save after a switch (the saved file not known yet, or gone): the
    # host's later bytes are matched against the generations by content
    "no save after the first files, one deleted": [
        ("unsaved", {}), ("burst", {"n": 1, "size": 1, "svc": B}), ("kill_9", {}),
        ("delete_and_recreate", {"svc": B})],
    "no save after the first files, one byte written": [
        ("unsaved", {}), ("disk_fills", {"room": 1}), ("burst", {"n": 1, "size": 1, "svc": A}),
        ("kill_9", {})],
    "no save after a rotation, the newest file deleted": [
        ("unsaved", {}), ("burst", {"n": 1, "size": 1, "svc": B}), ("save_positions", {}),
        ("burst", {"n": 1, "size": 1, "svc": B}), ("kill_9", {}),
        ("delete_and_recreate", {"svc": B})],
    # found by CI (seed 23): a copytruncate, kill -9, then rotations: the restarted logger
    # read the oldest generation and missed the current file's last write
    "copytruncate, kill -9, rotations while dead": [
        ("burst", {"n": 1, "size": 1, "svc": A}), ("copytruncate", {"svc": A}),
        ("kill_9", {}), ("burst", {"n": 2, "size": 1, "svc": A}), ("rotate", {"svc": A})],
    # seed 909: one byte of a write on the host (the disk full), a save, kill -9,
    # rotations hand the followed file's inode to the new file, whose first byte is alike:
    # taken for it (the position now keeps the bytes read past the host's last one)
    "one byte on the host, kill -9, rotations hand its inode on": [
        ("disk_fills", {"room": 1}), ("append", {"payload": b"\n", "svc": A}),
        ("save_positions", {}), ("kill_9", {}), ("burst", {"n": 3, "size": 1, "svc": A})],
    # the checker's rule: a file written and truncated before the logger saw it
    "no trace: created, written, truncated while the logger was dead": [
        ("kill_9", {}), ("append", {"payload": b"\n", "svc": A}), ("truncate", {"svc": A}),
        ("append", {"payload": b"\n", "svc": A})],
}


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_a_schedule_the_model_found(portal: BlockingPortal, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    core = _machine(portal, tmp_path, monkeypatch, "LogCoreSchedule")()
    try:
        steps = SCHEDULES[name]
        unsaved = steps[0][0] == "unsaved"
        core.start(**{**_HELD, "switch_saves": not unsaved})
        for step, kw in steps[unsaved:]:
            getattr(core, step)(**kw)
    finally:
        core.teardown()
