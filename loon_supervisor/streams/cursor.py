"""Where one stream stands, in bytes that are on the host disk.

The one rule: a saved position counts only bytes that are in the host file. Bytes still in
the copy's buffer, and bytes whose write failed (a full disk), are not counted, so a
position is never ahead of the host file and a crash, a kill -9 or a full disk can only make
a later reader read a byte again that the host does not have, never skip one.

A :class:`Position` (what the state file keeps) names the in-container file by its inode
and by a fingerprint: the file's last bytes before ``pos`` (at most ``FINGERPRINT``). A
resume, a re-attach and the final collection check both before they read, and search the
rotated generations when they do not match (streams/follow.py). ``host`` is the host file's
size at that moment: a new logger resumes at ``pos + (host file size now - host)``, since
the bytes written after the last save were taken from the stream one for one (the session
files hold the stream's bytes unchanged); that sum may run past the end of the file named
by ``inode`` when a rotation was crossed after the save, and the follower carries the excess
into the next generation.

A :class:`Cursor` keeps one segment per file the reader has switched to since the last byte
that reached the disk: after a rotation the position stays in the old file until the old
file's last buffered byte is written. Positions are non-negative by construction
(:class:`Position` refuses anything else).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Protocol

FINGERPRINT = 64  # bytes of a file kept before a position to recognise the file again
KEEP_KNOWN = 64  # rotated files remembered as older than the one followed (state file size)
KNOWN_TAIL = 8  # last bytes kept of each rotated file known (tells a reused inode apart)


class Copied(Protocol):
    """What a cursor needs of its copy (:class:`~loon_supervisor.streams.stream_copy.
    StreamCopy`)."""

    @property
    def received(self) -> int:
        """Bytes taken from the stream (buffered and dropped ones included)."""
        ...

    @property
    def written(self) -> int:
        """Bytes in the host file."""
        ...

    @property
    def written_tail(self) -> bytes:
        """The host file's last bytes (at most ``FINGERPRINT``)."""
        ...

    @property
    def recent(self) -> bytes:
        """The last bytes taken (at most ``FINGERPRINT``)."""
        ...


@dataclass(frozen=True)
class Known:
    """A rotated file by inode, size and last bytes (up to 8; empty: not known): rotated
    files do not change, and a reused inode seldom comes with the same size and ending."""

    inode: int
    size: int
    tail: bytes = b""


@dataclass(frozen=True)
class Position:
    """A cursor as the state file keeps it. ``tail``: the followed file's bytes just before
    ``pos`` (None in state files written before fingerprints existed)."""

    inode: int | None
    pos: int
    host: int
    tail: bytes | None = None
    older: tuple[Known, ...] = ()  # the rotated files known to be older than it
    # The files the reader went through after it, beyond the host's last byte: (inode, the
    # offset it started at, the offset it left at; None for the last): where the bytes
    # written after this save came from, even once ``inode`` is gone.
    chain: tuple[tuple[int | None, int, int | None], ...] = ()
    # The last bytes (up to KNOWN_TAIL) the reader took of each file of ``chain`` before it
    # left it: a file found later with that inode but other bytes there is not that file
    # (a reused inode, or the file rewritten since).
    ends: tuple[bytes, ...] = ()
    # The followed file's bytes the reader took after ``pos`` that are not on the host yet
    # (a full disk, a buffered half line; up to FINGERPRINT): a file with ``inode`` that
    # holds other bytes there is not the followed one. A short ``tail`` (one byte written
    # before the disk filled) cannot tell a reused inode apart; these can.
    ahead: bytes = b""

    def __post_init__(self) -> None:
        if self.pos < 0 or self.host < 0:
            raise ValueError(f"impossible stream position {self.pos} (host {self.host})")

    def to_json(self) -> dict[str, object]:
        return {"inode": self.inode, "pos": self.pos, "host": self.host,
                "tail": None if self.tail is None else base64.b64encode(self.tail).decode(),
                "older": [[k.inode, k.size, base64.b64encode(k.tail).decode()]
                          for k in self.older],
                "chain": [list(c) for c in self.chain],
                "ends": [base64.b64encode(e).decode() for e in self.ends],
                "ahead": base64.b64encode(self.ahead).decode()}

    @classmethod
    def from_json(cls, data: object) -> Position | None:
        """The saved position, or None when it is missing or impossible (a negative offset
        from an older version, garbage): the caller says so and does not trust it."""
        if not isinstance(data, dict) or "pos" not in data or "host" not in data:
            return None
        try:
            inode = data.get("inode")
            raw = data.get("tail")
            tail = None if raw is None else base64.b64decode(str(raw), validate=True)
            older = tuple(Known(int(i), int(n), base64.b64decode(str(t), validate=True))
                          for i, n, t in data.get("older") or ())
            chain = tuple((None if i is None else int(i), int(a), None if b is None else int(b))
                          for i, a, b in data.get("chain") or ())
            ends = tuple(base64.b64decode(str(e), validate=True)[-KNOWN_TAIL:]
                         for e in data.get("ends") or ())
            ahead = base64.b64decode(str(data.get("ahead") or ""), validate=True)
            return cls(int(inode) if inode is not None else None, int(data["pos"]),
                       int(data["host"]), tail[-FINGERPRINT:] if tail is not None else None,
                       older, chain, ends, ahead[:FINGERPRINT])
        except (ValueError, TypeError, binascii.Error):
            return None


@dataclass
class Segment:
    """The reader started taking bytes of file ``inode`` at offset ``pos`` when the copy had
    received ``start`` bytes; ``head`` is that file's bytes right before ``pos``."""

    inode: int | None
    pos: int
    start: int
    head: bytes = b""
    older: frozenset[Known] = frozenset()  # rotated files known to be older than this one
    end: bytes = b""  # its last bytes taken when the reader left it (up to KNOWN_TAIL)


@dataclass
class Cursor:
    """A stream's place: where the reader is (``read_pos``, bytes taken) and where the host
    file is (``position``, bytes written). ``verify``: the place came from a saved position
    and must be checked against the files before anything is read."""

    segments: list[Segment] = field(default_factory=list)
    verify: bool = False
    chain: tuple[tuple[int | None, int, int | None], ...] = ()  # a saved Position's chain
    ends: tuple[bytes, ...] = ()  # and its ends
    ahead: bytes = b""  # a saved Position's ``ahead``, from the verified place on
    since: tuple[int, int] | None = None  # host file bytes written after the saved position
    pending: str | None = None  # a rotation notice not resolved yet (for the final collection)
    gap_reported: bool = False
    finished: set[Known] = field(default_factory=set)  # files read to their end (this logger)
    # (inode, size) of files in ``finished`` whose bytes were dropped (a full disk): to read
    unwritten: set[tuple[int, int]] = field(default_factory=set)
    # The position resumed from and the bytes the copy had then: until the place is
    # verified and a byte taken, that position is still the truth and is saved as it was
    # (its chain included). Rebuilt from the unverified segment, a save made then named the
    # saved file at an offset the chain would have carried into the next file: a kill -9
    # mid-catch-up, then rotations, doubled that file's first lines.
    resumed: tuple[Position, int] | None = None

    @property
    def inode(self) -> int | None:
        """The file the reader reads (None: not known yet; the next file seen is it)."""
        return self.segments[-1].inode

    def set_inode(self, inode: int | None) -> None:
        self.segments[-1].inode = inode
        self._forget(inode)

    def _forget(self, inode: int | None) -> None:
        """``inode`` now names the file being read: a file known by that number before was
        deleted and its inode handed to this one (a rotation deleting the oldest generation
        and creating the new file does that at once), so what was known of it is stale and
        would take the followed file for a reused one."""
        if inode is not None:
            self.finished = {k for k in self.finished if k.inode != inode}

    def read_pos(self, copy: Copied) -> int:
        """Where the reader stands in its file: every byte taken, written or not."""
        seg = self.segments[-1]
        return seg.pos + copy.received - seg.start

    def fingerprint(self, copy: Copied) -> bytes:
        """The reader's file's bytes just before ``read_pos`` (as far as they are known)."""
        seg = self.segments[-1]
        n = min(FINGERPRINT, copy.received - seg.start)
        return (seg.head + (copy.recent[-n:] if n > 0 else b""))[-FINGERPRINT:]

    def switch(self, inode: int | None, copy: Copied, pos: int = 0, head: bytes = b"",
               older: frozenset[Known] = frozenset()) -> None:
        """The next bytes taken are file ``inode``'s from ``pos`` on; ``older``: rotated
        files known to be older than it."""
        if pos < 0:
            raise ValueError(f"impossible stream position {pos}")
        last = self.segments[-1]
        last.end = self.fingerprint(copy)[-KNOWN_TAIL:]
        if last.inode is not None and last.inode != inode and not self.verify:
            # its last bytes: those read now, else those it was entered after (a rotated
            # file entered at its end: without them a new file given its inode and size
            # would pass for it, and be skipped)
            self.finished.add(Known(last.inode, self.read_pos(copy), last.end))
            self.unwritten.discard((last.inode, self.read_pos(copy)))
        # a file read before with the new file's inode is gone (its inode was reused)
        self.finished = {k for k in self.finished if k.inode != inode or inode is None}
        known = [k for k in (*last.older, *self.finished, *older) if k.inode != inode]
        self.segments.append(Segment(inode, pos, copy.received, head[-FINGERPRINT:],
                                     frozenset(known[-KEEP_KNOWN:])))
        self.pending, self.verify, self.resumed = None, False, None
        # the saved position's: settled once it is left
        self.chain, self.ends, self.since, self.ahead = (), (), None, b""
        self._trim(copy)

    def _trim(self, copy: Copied) -> None:
        """Forget segments whose bytes are all on disk (keep the one holding the host's
        last byte)."""
        w = copy.written
        while len(self.segments) > 1 and self.segments[1].start <= w:
            del self.segments[0]

    def position(self, copy: Copied) -> Position:
        """The place of the host file's last byte: what the state file may keep."""
        if self.verify and self.resumed is not None and self.resumed[1] == copy.received:
            return self.resumed[0]
        self._trim(copy)
        w = copy.written
        at = 0
        for i, s in enumerate(self.segments):
            if s.start <= w:
                at = i
        seg = self.segments[at]
        done = w - seg.start
        n = min(FINGERPRINT, max(done, 0))
        tail = (seg.head + (copy.written_tail[-n:] if n > 0 else b""))[-FINGERPRINT:]
        later = self.segments[at:]
        chain: tuple[tuple[int | None, int, int | None], ...] = tuple(
            (a.inode, a.pos, a.pos + b.start - a.start)
            for a, b in zip(later, later[1:], strict=False))
        if chain:
            chain += ((later[-1].inode, later[-1].pos, None),)
        # bytes of this file taken beyond the host's last byte (as far as ``recent`` has them)
        beyond = (later[1].start if len(later) > 1 else copy.received) - max(w, seg.start)
        back = copy.received - max(w, seg.start)
        recent = copy.recent
        ahead = recent[len(recent) - back:][:min(beyond, FINGERPRINT)] \
            if 0 < beyond and back <= len(recent) else b""
        return Position(seg.inode, seg.pos + max(done, 0), w, tail, tuple(seg.older), chain,
                        tuple(a.end for a in later[:-1]), ahead)

    @classmethod
    def fresh(cls, copy: Copied) -> Cursor:
        """A new session: the stream starts where the host file ends, file not known yet."""
        return cls([Segment(None, copy.received, copy.received)])

    @classmethod
    def resume(cls, saved: Position, copy: Copied) -> tuple[Cursor, str | None]:
        """From a saved position and the host file as it is now (bytes written after the
        save advance it; a host file shorter than saved, after a power loss, moves it
        back). The cursor must be verified before use. Also a sentence when the host file
        lost bytes that the saved file cannot give back."""
        delta = copy.written - saved.host
        target = saved.pos + delta
        if saved.tail is None:  # an older state file: the host file's tail is the best guess
            fp = copy.written_tail
        elif delta >= 0:
            fp = (saved.tail + (copy.written_tail[-delta:] if delta else b""))[-FINGERPRINT:]
        else:
            fp = saved.tail[:max(0, len(saved.tail) + delta)]
        note = None
        if target < 0:
            note = (f"the host file is {-delta} bytes shorter than when its position was "
                    f"saved (a power loss?); up to {-target} bytes before it are not read again")
            target, fp = 0, b""
        fp = fp[-min(FINGERPRINT, target):] if target else b""
        ahead = saved.ahead[delta:] if 0 <= delta < len(saved.ahead) else b""
        return cls([Segment(saved.inode, target, copy.received, fp, frozenset(saved.older))],
                   verify=True, chain=saved.chain, ends=saved.ends, ahead=ahead,
                   since=(saved.host, copy.written) if delta > 0 else None,
                   resumed=(saved, copy.received)), note
