"""Where one stream stands, kept apart from the host file it is copied into.

The one rule of resume: a stream's offset (``pos``: bytes of the in-container file, or of
the engine's stored container output, taken so far) is explicit and saved in the state file
together with the host file's size at that moment (``host``). A new logger resumes at
``pos + (host file size now - host)``: the bytes written after the last save were taken
from the stream one for one, because the session files hold the stream's bytes unchanged.
A sink that transforms lines (timestamps, say) must save after each write instead; nothing
else in the code assumes the host file size is the stream offset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class Received(Protocol):
    """What a cursor needs of its copy: how many bytes it has taken from the stream."""

    @property
    def received(self) -> int: ...


@dataclass(frozen=True)
class Position:
    """A cursor as the state file keeps it."""

    inode: int | None
    pos: int
    host: int

    def to_json(self) -> dict[str, int | None]:
        return {"inode": self.inode, "pos": self.pos, "host": self.host}

    @classmethod
    def from_json(cls, data: object) -> Position | None:
        if not isinstance(data, dict) or "pos" not in data or "host" not in data:
            return None
        inode = data.get("inode")
        return cls(int(inode) if inode is not None else None, int(data["pos"]),
                   int(data["host"]))


@dataclass
class Cursor:
    """A stream's offset as a base plus the bytes the copy took since: ``inode`` (None: not
    known yet; the next file seen is read from ``pos``) of the in-container file."""

    inode: int | None
    base_pos: int
    base_host: int
    pending: str | None = None  # a rotation notice not resolved yet (for the final collection)
    gap_reported: bool = False

    def pos(self, copy: Received) -> int:
        return self.base_pos + copy.received - self.base_host

    def switch(self, inode: int | None, copy: Received) -> None:
        """The next bytes come from the start of a new file."""
        self.inode, self.base_pos, self.base_host, self.pending = inode, 0, copy.received, None

    def position(self, copy: Received) -> Position:
        return Position(self.inode, self.pos(copy), copy.received)

    @classmethod
    def resume(cls, saved: Position | None, copy: Received) -> Cursor:
        """From the saved position; without one, the stream starts where the file ends (a
        new session: both zero)."""
        if saved is None:
            return cls(None, copy.received, copy.received)
        return cls(saved.inode, saved.pos, saved.host)
