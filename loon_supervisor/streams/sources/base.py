"""Where a service's log file is read from. Two sources meet one interface: exec streams
inside the container (any engine; :class:`loon_supervisor.streams.sources.exec.ExecSource`)
and, on a local engine, the host directory bind-mounted at the log directory. The
followers (:mod:`loon_supervisor.streams.follow`) only speak this protocol."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Literal, Protocol

Event = Literal["replaced", "truncated"]


class Moved(Exception):
    """A generation was rotated on (renamed) between the stat that named it and a read of
    it: the path holds another file now (or none), nothing of it was used. The reader's
    state is where it was; the search runs again and finds the file under its new name."""


class Followed(Protocol):
    """An open follower of one file: bytes until None; ``event`` tells why it ended early
    (the file was renamed away or re-created: ``replaced``; cut short: ``truncated``)."""

    event: Event | None

    async def receive(self) -> bytes | None: ...


class LogSource(Protocol):
    """The log directory's files, addressed by their in-container paths."""

    kind: str

    def describe(self) -> str: ...

    async def prepare(self, mark: str) -> int:
        """Ready to follow; stop followers left behind by an earlier logger (how many)."""
        ...

    def container_stopped(self) -> None:
        """The container stopped (nothing writes any more): followers end once they have
        read their files to the end, instead of waiting for more."""
        ...

    async def stat(self, paths: list[str]) -> Mapping[str, tuple[int | None, int]]:
        """(inode, size) of each of ``paths`` that exists now, also after the container
        stopped (inode None where the source cannot tell it then)."""
        ...

    async def read_at(self, path: str, offset: int, count: int,
                      inode: int | None = None) -> bytes:
        """``count`` bytes of ``path`` from ``offset`` (fewer at its end), also after the
        container stopped (fingerprint checks). With ``inode`` (what a stat named there),
        the bytes come from that file or not at all: :class:`Moved` when the path holds
        another file or none by the time it is opened (a source that cannot tell reads by
        name)."""
        ...

    def open_follow(self, path: str, offset: int, mark: str, on_notice: Callable[[str], None],
                    follow: bool = True, inode: int | None = None
                    ) -> AbstractAsyncContextManager[Followed]:
        """Follow ``path`` from ``offset``. With ``inode`` (the file the offset was found in
        by an earlier stat), a file that is not that one by the time it is opened ends the
        follower at once with ``replaced``: a stat and a later open are not atomic."""
        ...

    async def file_size(self, path: str) -> int | None:
        """Size of ``path``, also after the container stopped; None when missing."""
        ...

    def stream(self, path: str, offset: int) -> AsyncIterator[bytes]:
        """The bytes of ``path`` from ``offset`` on (the final collection)."""
        ...
