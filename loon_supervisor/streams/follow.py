"""Following a deployment's log files and its container output while it runs, and
collecting what is left after it stopped. Starts and stops nothing: the
:class:`~loon_supervisor.lifecycle.deployment.Deployment` that owns the container decides
when the followers start, when they end and when the rest is collected.

Each service stream keeps a :class:`~loon_supervisor.streams.cursor.Cursor`. Before a
follower reads (at its start, after a rotation notice, after a broken stream, in a new
logger) and in the final collection, :meth:`Followers.catch_up` checks that the file at the
cursor's inode still holds the cursor's fingerprint at its offset, and otherwise searches
the rotated generations ``<svc>.log.N … <svc>.log.1`` (oldest first; N is the image's
``org.loon.log-backups``, 10 by default) for the followed file: its rest is read, then each
newer generation whole, then the current file is followed from its start. A file rewritten
in place (truncated) is told apart from a rotated one (its inode is still the current
file's, its bytes no longer match, and no generation holds them); a reused inode whose bytes
do not match is not taken for the followed file. Bytes that are gone from disk before anyone
read them are said in out.log: which service, from which host byte, until which file.
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
from loon_supervisor.streams.cursor import FINGERPRINT, KNOWN_TAIL, Cursor, Known, Position
from loon_supervisor.streams.sources.base import LogSource, Moved
from loon_supervisor.streams.stream_copy import StreamCopy, open_copy

MISSING_POLL = 0.2
CONTAINER = "container"
GENERATIONS = 10  # rotated generations searched when the image does not say (supervisord's)
# A file is recognised by its bytes alone (no inode: a copytruncate copy, a stopped exec
# container) only on at least this many, and never a file known to be read before.
CONTENT_MIN = 1
SEARCH_TRIES = 3  # searches when the generations were renamed under one (then: not found)
# The host bytes a restarted logger matches against the generations when its saved file is
# gone and no chain says where it went (they are what it wrote in about a second).
HOST_SEARCH_MAX = 64 << 20

Output = Callable[[int], AsyncIterator[bytes]]


@dataclass(frozen=True)
class Gen:
    """One generation of a service's log file as found now (``inode`` None: unknown, a
    stopped container seen through the archive endpoint)."""

    path: str
    inode: int | None
    size: int


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
    generations: int = GENERATIONS
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
            saved = self.saved.get(name)
            if saved is None:
                if self.saved and name != CONTAINER and copy.written:
                    self.say(f"{name}: no usable saved position; following from the end of "
                             f"what {copy.path.name} holds ({copy.written} bytes)",
                             terminal=False)
                self.cursors[name] = Cursor.fresh(copy)
                continue
            cur, note = Cursor.resume(saved, copy)
            if note is not None:
                self.say(f"{name}: {note}", terminal=False)
            cur.verify = name != CONTAINER
            self.cursors[name] = cur

    def container_stopped(self) -> None:
        """Nothing writes any more: the followers read their files to the end and end."""
        self.stopping = True
        self.source.container_stopped()

    def path(self, name: str) -> str:
        return f"{self.log_dir}/{name}.log"

    def positions(self) -> dict[str, Position]:
        """Where each host file ends in its stream, for the state file."""
        return {n: c.position(self.copies[n]) for n, c in self.cursors.items()}

    def _switched(self) -> None:
        """A cursor moved to a new file: save at once (what is written: the position stays
        in the old file until its last buffered byte is on disk)."""
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

    async def _generations(self, name: str) -> list[Gen]:
        base = self.path(name)
        paths = [f"{base}.{k}" for k in range(self.generations, 0, -1)] + [base]
        stats = await self.source.stat(paths)
        return [Gen(p, *stats[p]) for p in paths if p in stats]

    async def _read_at(self, g: Gen, offset: int, count: int) -> bytes:
        """Bytes of generation ``g`` itself (by its inode where the source tells them
        apart): :class:`Moved` if its path holds another file by now."""
        return await self.source.read_at(g.path, offset, count, inode=g.inode)

    async def _matches(self, g: Gen, offset: int, fp: bytes) -> bool:
        """Does generation ``g`` hold ``fp`` right before ``offset``?"""
        k = min(len(fp), offset)
        if k == 0:
            return True
        return await self._read_at(g, offset - k, k) == fp[-k:]

    async def _find(self, gens: list[Gen], inode: int | None, target: int, fp: bytes,
                    skip_current: bool, known: frozenset[Known] = frozenset(),
                    seen: frozenset[Known] = frozenset(), left: frozenset[Known] = frozenset(),
                    taken: Known | None = None) -> tuple[int, int] | None:
        """Where the stream continues: (index in ``gens``, offset). A ``target`` past the
        end of its file carries into the next generation. The followed inode first (oldest
        first), then, by content alone, the generations whose inode is not known or not the
        followed one (a copytruncate copy; newest first). ``known``: files not to take
        (read before, or older); ``seen``: those and files read but not written, which still
        tell a reused inode apart; ``left``: files a saved reader left (see :func:`_left`);
        ``taken``: how far that reader read the followed file itself, and its bytes there: a
        copy of that file holds them too (a short fingerprint, one byte after a write cut
        short, matches too many files to be taken alone)."""
        current = len(gens) - 1 if gens and not gens[-1].path[-1].isdigit() else -1
        by_inode = [i for i, g in enumerate(gens) if inode is not None and g.inode == inode
                    and not await self._reused(g, seen | known)
                    and not await self._rewritten(g, left)]
        by_content = [i for i in reversed(range(len(gens))) if i not in by_inode
                      and not await self._known(gens[i], known)]  # read before: not ours
        tried: set[tuple[int, int]] = set()
        for i in [*by_inode, *by_content]:
            if skip_current and i == current:
                continue
            j, u = i, target
            while u > gens[j].size and j + 1 < len(gens):
                u -= gens[j].size
                j += 1
            if u > gens[j].size or (j, u) in tried or (skip_current and j == current):
                continue
            tried.add((j, u))
            if i in by_content and min(len(fp), u) < CONTENT_MIN:
                continue  # too little to recognise the file by
            if i in by_content and taken is not None and (
                    gens[i].size < taken.size
                    or not await self._matches(gens[i], taken.size, taken.tail)):
                continue
            if await self._matches(gens[j], u, fp):
                return j, u
        # A saved position whose file is gone (or reused) while the host file went on past
        # it: the stream may have stopped at the end of some generation.
        for j in reversed(range(len(gens))):
            u = gens[j].size
            if (skip_current and j == current) or (j, u) in tried \
                    or min(len(fp), u) < CONTENT_MIN:
                continue
            if await self._matches(gens[j], u, fp):
                return j, u
        return None

    async def catch_up(self, name: str, event: str | None, final: bool = False) -> int | None:
        """Bring ``name``'s cursor to the current ``<svc>.log``: check the followed file
        (inode and fingerprint), read what is left of it and of every newer rotated
        generation, and say what is gone. The offset to follow the current file from, or
        None when it is missing. ``final``: the container has stopped; the current file's
        rest is read too (the final collection)."""
        copy, cur = self.copies[name], self.cursors[name]
        base = self.path(name)
        gens = await self._generations(name)
        now = gens[-1] if gens and gens[-1].path == base else None
        t, fp = cur.read_pos(copy), cur.fingerprint(copy)
        if cur.inode is None and not (cur.verify and t > 0):
            if now is None:
                return None
            rotated = [g for g in gens if g is not now]
            known = cur.segments[-1].older | cur.finished
            if known:
                # The current file was missing when the reader went on past the last one
                # it knew (a rotation between its rename and the new file's creation).
                # Every generation not known now came after it, and more rotations may
                # have happened since: read them, oldest first, before the current file.
                unread = [g for g in rotated if not await self._known(g, known)]
            elif t == 0 and copy.received == 0 and not cur.gap_reported:
                # A new session meets files that were already rotated: the older ones first.
                unread = rotated
            else:
                unread = []
            if unread:
                await self._read_whole(name, unread, final)
                cur.switch(now.inode, copy, older=await self._older(name, rotated))
            else:
                cur.set_inode(now.inode)
                cur.segments[-1].older = cur.segments[-1].older | await self._older(name,
                                                                                    rotated)
            cur.gap_reported = False
            self._switched()
            return await self._follow_from(name, now, cur.read_pos(copy), final)
        truncated = event == "truncated"
        # Files known by inode, size and ending: rotated ones older than ours and those read
        # to their end (``seen``); ``known`` leaves out those whose bytes were dropped, not
        # written (a full disk): they are read again, yet still tell a reused inode apart.
        if cur.verify:
            cur.finished |= _passed(cur, t)
        # Files older than the saved one whose inode a file of the saved chain has since
        # (rotation deleted them and handed the inode on) are no longer known by it.
        handed = {c[0] for c in cur.chain if c[0] is not None} if cur.verify else set()
        seen = frozenset(k for k in cur.segments[-1].older if k.inode not in handed) \
            | cur.finished
        known = frozenset(k for k in seen if (k.inode, k.size) not in cur.unwritten)
        left = _left(cur)
        for _ in range(SEARCH_TRIES):
            found = None
            if cur.verify and cur.chain:
                found = await self._along_chain(gens, cur.chain, t, fp, seen, left)
            if found is None and cur.inode is not None:
                found = await self._find(gens, cur.inode, t, fp, truncated, known, seen, left,
                                         _taken(cur))
            if found is None and cur.verify and cur.since is not None:
                # the saved file is gone or was never known (inode None: saved before the
                # first file was seen): where the host's later bytes are, oldest first
                on_host = await self._by_host(name, gens, known)
                if on_host is not None:
                    found, fp = on_host[:2], on_host[2]
            if found is None and cur.inode is None:
                found = await self._find(gens, cur.inode, t, fp, truncated, known, seen, left,
                                         _taken(cur))
            if found is not None:
                break
            # The checks read the generations by name: a rotation since the stat shifted
            # them under the search (a writer rotating every few ms). Look again if so.
            again = await self._generations(name)
            if [(g.path, g.inode) for g in again] == [(g.path, g.inode) for g in gens]:
                break
            gens = again
        now = gens[-1] if gens and gens[-1].path == base else None
        if found is not None:
            j, u = found
            g = gens[j]
            rotated = [x for x in gens[:j] if x.inode != cur.inode and x.size
                       and not await self._known(x, known)]
            if u == 0 and g.inode == cur.inode and t == 0 and rotated \
                    and not await self._moved(name, gens, final):
                # Nothing of the followed file was taken yet (its inode is all that says
                # this is it), and rotated files older than this one that are not known to
                # be older than the followed file exist: copies of it (copytruncate) made
                # since, or the followed file was rotated away and its inode handed on.
                # Either way those files come first, then this one and the newer ones.
                self.say.log_only(f"{name}: {g.path} holds nothing read yet and older files "
                                  f"not read before exist; reading "
                                  f"{', '.join(x.path for x in rotated)} first")
                return await self._read_newer(
                    name, rotated + [x for x in gens[j:] if x is not now], now, final)
            if g.inode != cur.inode or u != t or cur.verify:
                cur.switch(g.inode, copy, u, fp[-min(FINGERPRINT, u):] if u else b"",
                           cur.segments[-1].older | await self._older(name, gens[:j]))
                self._switched()
            if g is now:
                return await self._follow_from(name, g, u, final)
            newer = gens[j + 1:]
            self.say.log_only(f"{name}: {base} was rotated; reading the rest of {g.path} "
                              f"from byte {u}" + (f", then {', '.join(x.path for x in newer)} "
                                                  "from their start" if newer else ""))
            await self._read(name, g, u, final)
            return await self._read_newer(name, [x for x in newer if x is not now], now, final)
        at = next((g for g in gens if g.inode == cur.inode), None)
        if at is not None and (await self._reused(at, seen) or await self._rewritten(at, left)):
            at = None
        after = gens
        if at is not None and at is not now and any(
                i == at.inode and e == at.size for i, _, e in cur.chain):
            # the followed file is there as it was read to its end: go on past it
            after = gens[gens.index(at) + 1:]
            if at.inode is not None:
                cur.finished.add(Known(at.inode, at.size))
        # otherwise it was rewritten (copytruncate, truncated and regrown) and is read again
        # from its start with every rotated file not known to be older, in order
        newer = [g for g in after if g is not now and not await self._known(g, known)]
        await self._moved(name, gens, final)
        if at is not None and at is now and not newer:
            self.say(f"{name}: {base} was truncated or rewritten in place; following it from "
                     f"its start; bytes it had after byte {t} that were not read yet, if any, "
                     f"are gone (after host byte {copy.written} of {copy.path.name})",
                     terminal=False)
            cur.switch(now.inode, copy)
            self._switched()
            return await self._follow_from(name, now, 0, final)
        # Every rotated file is newer than the one followed (rotation deletes the oldest
        # first), except those known to be older (read before it).
        rotated = newer
        if not cur.gap_reported:
            nxt = rotated[0].path if rotated else base
            self.say(f"{name}: the file followed (inode {cur.inode}, read to byte {t}) is gone "
                     f"from disk; its "
                     f"later bytes and those of any generation rotated out after it are lost "
                     f"(how many is not known): the gap is in {copy.path.name} after host byte "
                     f"{copy.written}, before the first line of {nxt}", terminal=False)
        cur.gap_reported = now is None
        return await self._read_newer(name, rotated, now, final)

    async def _moved(self, name: str, gens: list[Gen], final: bool) -> bool:
        """Raise :class:`Moved` when a live follower's generations were renamed since
        ``gens`` was taken: what was read of them by name (fingerprints, known endings) may
        have come from other files, so decisions made on it (a copy to read first, a file
        gone) are not taken; the search runs again. False when they held still."""
        if final:  # the container has stopped: nothing renames them any more
            return False
        again = await self._generations(name)
        if [(g.path, g.inode) for g in again] != [(g.path, g.inode) for g in gens]:
            raise Moved(self.path(name))
        return False

    async def _by_host(self, name: str, gens: list[Gen], known: frozenset[Known]
                       ) -> tuple[int, int, bytes] | None:
        """Where the host stopped, by content: the bytes the host file got after the saved
        position (a kill -9 before the save that follows a file switch) are matched against
        the generations not known, oldest first: each one the host has whole is passed, and
        the host stopped inside the next one, or at the end of the last one. (index, offset,
        the bytes before it), or None when the saved file is all the host got, or the bytes
        are too many to read here."""
        cur = self.cursors[name]
        assert cur.since is not None
        a, b = cur.since
        if b - a > HOST_SEARCH_MAX:
            return None
        since = _host_bytes(self.copies[name].path, a, b - a)
        start: tuple[int, int] | None = None
        last: tuple[int, int, bytes] | None = None
        # The saved file itself, still there by its inode: the host's bytes begin at the
        # saved offset in it; the host had its rest if they go on with those bytes.
        p0 = cur.read_pos(self.copies[name]) - len(since)
        j0 = next((j for j, g in enumerate(gens) if cur.inode is not None
                   and g.inode == cur.inode and 0 <= p0 < g.size), None)
        if j0 is not None:
            g0 = gens[j0]
            k = g0.size - p0
            n = min(FINGERPRINT, k)
            if k <= len(since) and since[k - n:k] == await self._read_at(
                    g0, g0.size - n, n):
                start, last = (j0 + 1, k), (j0, g0.size, since[k - n:k])
        for i, g in enumerate(gens if start is None else ()):
            if g.size and not await self._known(g, known):
                head = await self._read_at(g, 0, min(FINGERPRINT, g.size))
                o = since.find(head) if head else -1
                if o < 0:  # or the host stopped early in it: its bytes end the host's
                    o = next((len(since) - x for x in range(min(len(head), len(since)), 0, -1)
                              if since.endswith(head[:x])), -1)
                if o >= 0:
                    start = i, o
                    break
        if start is None:
            return None
        i, o = start
        for j in range(i, len(gens)):
            g = gens[j]
            if not g.size:
                continue
            h = min(FINGERPRINT, g.size, len(since) - o)
            if (j != i or last is not None) and (not h or since[o:o + h] != await self._read_at(g, 0, h)):
                break  # the host did not go on into this one
            n = min(FINGERPRINT, g.size)
            if o + g.size > len(since):  # the host stopped inside it
                u = len(since) - o
                k = min(FINGERPRINT, u)
                if await self._matches(g, u, since[len(since) - k:]):
                    return j, u, since[len(since) - k:]
                return None
            end = since[o + g.size - n:o + g.size]
            if end != await self._read_at(g, g.size - n, n):
                return None
            last = j, g.size, end
            o += g.size
        if last is not None and o < len(since):
            # the host went on past that file's end with bytes no file on disk starts with
            self.say(f"{name}: {len(since) - o} bytes of {self.copies[name].path.name} before "
                     f"host byte {b} came after the end of {gens[last[0]].path} from a file "
                     "that is gone from disk; its later bytes, if any, are lost",
                     terminal=False)
        return last

    async def _along_chain(self, gens: list[Gen], chain: tuple[tuple[int | None, int,
                                                                     int | None], ...],
                           target: int, fp: bytes, known: frozenset[Known],
                           left: frozenset[Known] = frozenset()) -> tuple[int, int] | None:
        """A saved position's ``target`` walked through the files its reader went through
        after it (whose bytes the host got after the save): the saved file may be gone."""
        u, rest = target, 0
        for k, (inode, start, end) in enumerate(chain):
            if k:
                u = start + rest
            if end is not None and u > end:
                rest = u - end
                continue
            for j, g in enumerate(gens):
                if inode is not None and g.inode == inode and u <= g.size \
                        and not await self._reused(g, known) \
                        and not await self._rewritten(g, left) \
                        and await self._matches(g, u, fp):
                    return j, u
            return None
        return None

    async def _reused(self, g: Gen, known: frozenset[Known]) -> bool:
        """A file with the inode of one read to its end before, but another size or ending:
        the inode was handed to a new file (unless another file known by that inode is
        this one: inodes are handed on and on)."""
        other = False
        for k in known:
            if k.inode != g.inode:
                continue
            if k.size == g.size and (not k.tail
                                     or await self._matches(g, g.size, k.tail)):
                return False
            other = True
        return other

    async def _rewritten(self, g: Gen, left: frozenset[Known]) -> bool:
        """A file with the inode of one a saved reader left at byte ``size`` after taking
        ``tail``, that is shorter or holds other bytes there: not the bytes that reader read
        (its inode reused, or the file truncated or copied-and-truncated since), so an
        offset in it is not the saved one, however well an empty fingerprint matches."""
        for k in left:
            if k.inode == g.inode and (g.size < k.size or (
                    k.tail and not await self._matches(g, k.size, k.tail))):
                return True
        return False

    async def _known(self, g: Gen, known: frozenset[Known] | set[Known]) -> bool:
        for k in known:
            if k.inode == g.inode and k.size == g.size and (
                    not k.tail or await self._matches(g, g.size, k.tail)):
                return True
        return False

    async def _older(self, name: str, gens: list[Gen]) -> frozenset[Known]:
        """``gens`` as rotated files known to be older, each with its last bytes: an inode
        handed to a new file of the same size is told apart by them (a file known without
        them would pass for any such file, and its bytes be skipped). The tail comes from
        what the cursor already knows of that file, else it is read (once per file)."""
        cur = self.cursors[name]
        have = {(k.inode, k.size): k for k in (*cur.segments[-1].older, *cur.finished)
                if k.tail}
        found: set[Known] = set()
        for g in gens:
            if g.inode is None:
                continue
            k = have.get((g.inode, g.size))
            if k is None:
                n = min(KNOWN_TAIL, g.size)
                k = Known(g.inode, g.size,
                          await self._read_at(g, g.size - n, n) if n else b"")
            found.add(k)
        return frozenset(found)

    async def _read_newer(self, name: str, rotated: list[Gen], now: Gen | None,
                          final: bool) -> int | None:
        copy, cur = self.copies[name], self.cursors[name]
        await self._read_whole(name, rotated, final)
        cur.switch(now.inode if now is not None else None, copy,
                   older=await self._older(name, rotated))
        self._switched()
        return None if now is None else await self._follow_from(name, now, 0, final)

    async def _read_whole(self, name: str, gens: list[Gen], final: bool) -> None:
        copy, cur = self.copies[name], self.cursors[name]
        for i, g in enumerate(gens):
            cur.switch(g.inode, copy, older=await self._older(name, gens[:i]))
            self._switched()
            await self._read(name, g, 0, final)

    async def _follow_from(self, name: str, g: Gen, offset: int, final: bool) -> int | None:
        """Live: the offset to follow from. Final: read the rest now (None: done)."""
        if not final:
            return offset
        await self._read(name, g, offset, final)
        return None

    async def _read(self, name: str, g: Gen, offset: int, final: bool) -> None:
        """The bytes of ``g`` from ``offset`` to its end into ``name``'s copy."""
        if offset < 0:
            raise ValueError(f"impossible offset {offset} in {g.path}")
        if offset >= g.size and g.inode is not None:
            return
        copy = self.copies[name]
        if final:
            async with FileSink(copy.path) as sink:
                source = self.source.stream(g.path, offset)
                try:
                    async for chunk in source:
                        await copy.append(sink, chunk)
                finally:
                    await source.aclose()  # type: ignore[attr-defined]
            return
        async with self.source.open_follow(
                g.path, offset, f"{self.mark}/{name}",
                lambda text: self.say.log_only(f"{name} follower: {text}"),
                follow=False, inode=g.inode) as rest:
            while (data := await rest.receive()) is not None:
                copy.feed(data)
                if copy.full:
                    await copy.room()
        if rest.event == "replaced":
            raise Moved(g.path)

    async def _follow_service(self, name: str, *,
                              task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
                              ) -> None:
        """Copy one service's file across rotations; re-attach at the right byte if the
        stream ends early."""
        copy, cur = self.copies[name], self.cursors[name]
        started = False
        attempt = moved = 0
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
                    try:
                        offset = await self.catch_up(name, event)
                    except Moved:
                        # renamed between the look and the read: look again (after a
                        # checkpoint: a host directory's checks never yield otherwise)
                        moved += 1
                        await anyio.sleep(0 if moved < 20 else 0.005)
                        continue
                    moved = 0
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
                         f"at byte {cur.read_pos(copy)} in {delay:.1f}s")
                await anyio.sleep(delay)

    async def _follow_output(self) -> None:
        """The container's own output; on a break (or in a new logger) the engine's stored
        output is read again from its start, leaving out the bytes already taken: no clock,
        no seam."""
        copy, cur = self.copies[CONTAINER], self.cursors[CONTAINER]
        async with open_copy(copy):
            while True:
                source = self.output(cur.read_pos(copy))
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
        out of the stopped container: the same check and generation search as a live
        follower's (:meth:`catch_up`), then the rest of the current file. A copy whose disk
        was full is taken up again from the last byte it wrote."""
        for name in self.services:
            copy, cur = self.copies[name], self.cursors[name]
            if copy.failed is not None:
                self.cursors[name] = cur = self._retry(name)
            before = copy.received
            for tries in range(SEARCH_TRIES, 0, -1):
                try:
                    await self.catch_up(name, cur.pending, final=True)
                    break
                except Moved:  # a file renamed by hand after the stop: look again
                    if tries == 1:
                        self.say(f"{name}: its log files kept being renamed during the final "
                                 "collection; what they hold after host byte "
                                 f"{copy.written} of {copy.path.name} was not collected",
                                 terminal=False)
            got = copy.received - before
            if got:
                self.say.log_only(f"{name}: collected {got} final bytes after the stop")

    def _retry(self, name: str) -> Cursor:
        """A copy that could not write: from its last written byte again, once more."""
        copy, cur = self.copies[name], self.cursors[name]
        pos = cur.position(copy)
        copy.failed = None
        copy.taken, copy.recent = copy.written, copy.written_tail
        again, _ = Cursor.resume(pos, copy)
        # What this logger read to the end stays known, but the files it left after the
        # host's last byte are read again: their bytes were dropped, not written
        # (cur.position() trimmed the segments to the one holding that byte and later ones).
        dropped = {Known(a.inode, a.pos + b.start - a.start)
                   for a, b in zip(cur.segments, cur.segments[1:], strict=False)
                   if a.inode is not None}
        again.finished = set(cur.finished)
        again.unwritten = {(k.inode, k.size) for k in dropped}
        return again

    async def collect_output(self) -> None:
        """The container output a dead follower missed (its stored output is complete once
        the container stopped)."""
        copy = self.copies[CONTAINER]
        await append_stream(copy, self.output(self.cursors[CONTAINER].read_pos(copy)))


def _left(cur: Cursor) -> frozenset[Known]:
    """The files a saved position's reader went through and left, each as (inode, the
    offset it left at, its last bytes before it): a restarted logger has no other record of
    them (``finished`` is this process's)."""
    left = {Known(c[0], c[2], e) for c, e in zip(cur.chain, cur.ends, strict=False)
            if c[0] is not None and c[2] is not None}
    ahead = _ahead(cur)
    if ahead is not None:
        left.add(ahead)
    return frozenset(left)


def _ahead(cur: Cursor) -> Known | None:
    """The followed file as far as a saved position's reader took it beyond the host's last
    byte (its ``ahead``), with the bytes before that end: the followed file holds them, a
    file given its inode since most likely does not."""
    seg = cur.segments[-1]
    if not cur.verify or not cur.ahead or seg.inode is None:
        return None
    return Known(seg.inode, seg.pos + len(cur.ahead), (seg.head + cur.ahead)[-FINGERPRINT:])


def _host_bytes(path: Path, offset: int, count: int) -> bytes:
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            return fh.read(count)
    except OSError:
        return b""


def _taken(cur: Cursor) -> Known | None:
    """Where a saved position's reader left the followed file itself (its chain starts
    there), with its last bytes before: None when it had not left it."""
    if cur.chain and cur.ends and cur.chain[0][0] == cur.inode and cur.inode is not None:
        end = cur.chain[0][2]
        if end is not None:
            return Known(cur.inode, end, cur.ends[0])
    return _ahead(cur)


def _passed(cur: Cursor, target: int) -> set[Known]:
    """The files of a saved position's chain that the host has to their end (the saved
    byte plus what the host got since walks past them): read, and not to read again."""
    found: set[Known] = set()
    u, rest = target, 0
    for k, (inode, start, end) in enumerate(cur.chain):
        if k:
            u = start + rest
        if end is None or u < end:
            break
        if inode is not None:
            found.add(Known(inode, end, cur.ends[k] if k < len(cur.ends) else b""))
        rest = u - end
    return found


async def append_stream(copy: StreamCopy, source: AsyncIterator[bytes]) -> int:
    """Append a finished stream's bytes to ``copy``'s file (after its follower ended)."""
    got = 0
    async with FileSink(copy.path) as sink:
        try:
            async for chunk in source:
                got += len(chunk)
                await copy.append(sink, chunk)
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
