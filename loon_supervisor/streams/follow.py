"""Following a deployment's log files and its container output while it runs, and
collecting what is left after it stopped. Starts and stops nothing: the
:class:`~loon_supervisor.lifecycle.deployment.Deployment` that owns the container decides
when the followers start, when they end and when the rest is collected.

Each service stream keeps a :class:`~loon_supervisor.streams.cursor.Cursor`. A follower that
meets a rotation (rename + reopen, truncation, a missing file), a broken stream, or a new
logger after a crash resumes through :meth:`Followers.resync`, which reads the rest of
``<svc>.log.1`` first when the followed file was renamed away, so rotated bytes reach the
host file exactly once, in order. After the container stops, :meth:`Followers.collect`
streams out only the unread bytes of the files that still hold some.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from anyio.abc import TaskGroup, TaskStatus

from loon_supervisor.errors import EngineError
from loon_supervisor.sinks.files import FileSink
from loon_supervisor.sinks.reporter import Reporter
from loon_supervisor.sinks.terminal import Printer
from loon_supervisor.streams.cursor import Cursor, Position
from loon_supervisor.streams.source import LogSource
from loon_supervisor.streams.stream_copy import StreamCopy, open_copy

MISSING_POLL = 0.2
CONTAINER = "container"

Output = Callable[[int], AsyncIterator[bytes]]


@dataclass
class Followers:
    """The copies of one deployment's streams: one per service plus the container's own
    output, each with its cursor.

    ``output(skip)`` reads the container's stored output from its first byte leaving out
    ``skip``; ``still_running()`` tells a broken stream from a stopped container (and waits
    out an engine that went away)."""

    source: LogSource
    log_dir: str
    services: tuple[str, ...]
    session: Path
    say: Reporter
    output: Output
    still_running: Callable[[], Awaitable[bool]]
    mark: str = "loon"
    printer: Printer | None = None
    saved: dict[str, Position] = field(default_factory=dict)
    on_switch: Callable[[], None] | None = None  # save positions now (after a file switch)
    copies: dict[str, StreamCopy] = field(default_factory=dict)
    cursors: dict[str, Cursor] = field(default_factory=dict)
    stopping: bool = False

    def __post_init__(self) -> None:
        """One StreamCopy (and Cursor) per stream, resuming from the host files and the
        saved positions."""
        on_lines = self.printer.lines if self.printer else None
        for name in [*self.services, CONTAINER]:
            copy = StreamCopy(name, self.session / f"{name}.log", on_lines,
                              lambda text: self.say(text))
            self.copies[name] = copy
            self.cursors[name] = Cursor.resume(self.saved.get(name), copy)

    def container_stopped(self) -> None:
        """Nothing writes any more: the followers read their files to the end and end."""
        self.stopping = True
        self.source.container_stopped()

    def path(self, name: str) -> str:
        return f"{self.log_dir}/{name}.log"

    def positions(self) -> dict[str, Position]:
        """The explicit stream positions, for the state file."""
        return {n: c.position(self.copies[n]) for n, c in self.cursors.items()}

    def _switched(self) -> None:
        """A cursor moved to a new file: save at once, so a crash right after cannot resume
        the new file's bytes at the old file's offset."""
        if self.on_switch is not None:
            with contextlib.suppress(OSError):
                self.on_switch()

    async def start(self, tg: TaskGroup) -> None:
        """Attach every stream (returns once each service follower is attached)."""
        stale = await self.source.prepare(self.mark)
        if stale:
            self.say(f"stopped {stale} log followers left in the container by an earlier "
                     "logger", terminal=False)
        self.say.log_only(f"log source: {self.source.describe()}")
        for name in self.services:
            await tg.start(self._follow_service, name)
        tg.start_soon(self._follow_output)
        self.say(f"following {len(self.services)} services: {', '.join(self.services)}")

    async def resync(self, name: str, event: str | None) -> int | None:
        """Decide where to follow ``<svc>.log`` from, reading the rest of ``<svc>.log.1``
        first when the followed file was renamed away. None: the file is missing now."""
        copy, cur = self.copies[name], self.cursors[name]
        path = self.path(name)
        old = f"{path}.1"
        stats = await self.source.stat([path, old])
        now, prev = stats.get(path), stats.get(old)
        pos = cur.pos(copy)
        if cur.inode is None:
            if now is None:
                return None
            if pos == 0 and copy.received == 0 and prev is not None and prev[1] > 0 \
                    and not cur.gap_reported:
                # A new session meets a file that was already rotated: the older part first.
                await self._read_rest(name, old, 0)
                cur.switch(now[0], copy)
            cur.inode, cur.gap_reported = now[0], False
            self._switched()
            return cur.pos(copy)
        if now is not None and now[0] == cur.inode:
            if event != "truncated" and now[1] >= pos:
                return pos
            recovered = ""
            if prev is not None and prev[0] != cur.inode and prev[1] > pos and \
                    await self._seam_matches(copy, old, pos):
                await self._read_rest(name, old, pos)
                recovered = f"; its bytes after {pos} were read from {old} (copytruncate)"
            self.say(f"{name}: {path} was truncated{recovered}; following it from its start",
                     terminal=False)
            cur.switch(now[0], copy)
            self._switched()
            return 0
        if prev is not None and prev[0] == cur.inode:
            if prev[1] > pos:
                await self._read_rest(name, old, pos)
            self.say.log_only(f"{name}: {path} was rotated; read the rest of {old}, following "
                              "the new file from its start")
        elif not cur.gap_reported:
            self.say(f"{name}: {path} was replaced while not followed and its previous file "
                     f"is gone; bytes it had after {pos} are missing", terminal=False)
        cur.switch(now[0] if now is not None else None, copy)
        cur.gap_reported = now is None
        self._switched()
        return None if now is None else 0

    async def _seam_matches(self, copy: StreamCopy, path: str, pos: int) -> bool:
        """Is ``path`` a copy of the file we followed? Its bytes before ``pos`` must be the
        ones we last received."""
        k = min(len(copy.recent), pos)
        if k == 0:
            return True
        data = await self.source.read_at(path, pos - k, k)
        return data == copy.recent[-k:]

    async def _read_rest(self, name: str, path: str, pos: int) -> None:
        copy = self.copies[name]
        async with self.source.open_follow(
                path, pos, f"{self.mark}/{name}",
                lambda text: self.say.log_only(f"{name} follower: {text}"),
                follow=False) as rest:
            while (data := await rest.receive()) is not None:
                copy.feed(data)
                if copy.full:
                    await copy.room()

    async def _follow_service(self, name: str, *,
                              task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
                              ) -> None:
        """Copy one service's file across rotations; re-attach at the right byte if the
        stream ends early."""
        copy, cur = self.copies[name], self.cursors[name]
        started = False
        attempt = 0
        event: str | None = None

        def on_notice(text: str) -> None:
            if text:
                self.say.log_only(f"{name} follower: {text}")

        def start() -> None:
            nonlocal started
            if not started:
                started = True
                task_status.started()

        async with open_copy(copy):
            while True:
                try:
                    offset = await self.resync(name, event)
                    event = cur.pending = None
                    if offset is None:
                        start()
                        if self.stopping:
                            return
                        await anyio.sleep(MISSING_POLL)
                        continue
                    async with self.source.open_follow(self.path(name), offset,
                                                       f"{self.mark}/{name}", on_notice,
                                                       inode=cur.inode) as followed:
                        start()
                        if attempt:
                            self.say(f"{name}: log stream re-attached at byte {offset}")
                        attempt = 0
                        while (data := await followed.receive()) is not None:
                            copy.feed(data)
                            if copy.full:  # the writer is behind: leave bytes in the source
                                await copy.room()
                        event = cur.pending = followed.event
                    if event is not None and not self.stopping:
                        continue
                except EngineError as exc:
                    if not started:
                        raise
                    self.say(f"{name}: log stream broke ({exc})", terminal=False)
                if self.stopping or not await self.still_running():
                    return
                attempt += 1
                delay = min(0.1 * 2 ** attempt, 5.0)
                self.say(f"{name}: log stream ended while the container runs; re-attaching "
                         f"at byte {cur.pos(copy)} in {delay:.1f}s")
                await anyio.sleep(delay)

    async def _follow_output(self) -> None:
        """The container's own output; on a break (or in a new logger) the engine's stored
        output is read again from its start, leaving out the bytes already taken: no clock,
        no seam."""
        copy, cur = self.copies[CONTAINER], self.cursors[CONTAINER]
        async with open_copy(copy):
            while True:
                source = self.output(cur.pos(copy))
                try:
                    async for data in source:
                        copy.feed(data)
                        if copy.full:
                            await copy.room()
                except EngineError:
                    pass
                finally:
                    with anyio.CancelScope(shield=True):
                        await source.aclose()  # type: ignore[attr-defined]
                if self.stopping or not await self.still_running():
                    return
                await anyio.sleep(0.5)

    async def collect(self) -> None:
        """After the container stopped: append what the followers could not read, streamed
        out of the stopped container, only from the files that still hold unread bytes."""
        for name in self.services:
            copy, cur = self.copies[name], self.cursors[name]
            path = self.path(name)
            pos = cur.pos(copy)
            size = await self.source.file_size(path)
            parts: list[tuple[str, int]] = []
            if cur.pending in ("replaced", "truncated") or (size is not None and size < pos):
                # A rotation the follower had no time to resolve: the rest of .1, then the
                # new file from its start.
                if cur.pending != "truncated":
                    old_size = await self.source.file_size(f"{path}.1")
                    if old_size is not None and old_size > pos:
                        parts.append((f"{path}.1", pos))
                parts.append((path, 0))
            elif size is not None and size > pos:
                parts.append((path, pos))
            got = 0
            for part, offset in parts:
                got += await append_stream(copy, self.source.stream(part, offset))
            if got:
                self.say.log_only(f"{name}: collected {got} final bytes after the stop")

    async def collect_output(self) -> None:
        """The container output a dead follower missed (its stored output is complete once
        the container stopped)."""
        copy = self.copies[CONTAINER]
        await append_stream(copy, self.output(self.cursors[CONTAINER].pos(copy)))


async def append_stream(copy: StreamCopy, source: AsyncIterator[bytes]) -> int:
    """Append a finished stream's bytes to ``copy``'s file (after its follower ended)."""
    got = 0
    async with FileSink(copy.path) as sink:
        try:
            async for chunk in source:
                got += len(chunk)
                if copy.failed is None:
                    try:
                        await sink.write(chunk)
                    except OSError as exc:
                        copy.failed = f"cannot write {copy.path}: {exc.strerror or exc}"
                        if copy.on_fault is not None:
                            copy.on_fault(copy.failed)
                copy.written += len(chunk)
                if copy.on_lines is not None:
                    copy.on_lines(copy.name, chunk)
        finally:
            await source.aclose()  # type: ignore[attr-defined]
    return got


def last_lines(path: Path, n: int = 20) -> list[str]:
    """The last ``n`` lines of a session file (crash reports)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            data = fh.read()
    except OSError:
        return []
    return data.decode(errors="replace").splitlines()[-n:]
