"""The in-container files of a deployment read through exec (``tail``, ``stat``) and the
archive endpoint: the :class:`~loon_supervisor.streams.sources.base.LogSource` that works
with any engine, local or remote, and any image with a shell userland. Every call goes
through the engine's interface (:class:`~loon_supervisor.engine.base.ContainerFiles`):
nothing here touches aiodocker."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

from loon_supervisor.engine.base import ContainerFiles
from loon_supervisor.errors import LoonError
from loon_supervisor.streams.sources.base import Followed


class ExecSource:
    """One container's log files, followed by marked ``tail`` execs."""

    kind = "exec"

    def __init__(self, engine: ContainerFiles, cid: str) -> None:
        self._engine = engine
        self._cid = cid
        self._gnu: str | None = None
        self._prepared = False

    def describe(self) -> str:
        if not self._prepared:  # nothing followed yet (a collection after the stop)
            return "exec streams in the container"
        how = "GNU tail -F, inotify" if self._gnu else "busybox tail -F, polling once a second"
        return f"exec streams ({how}) in the container"

    async def prepare(self, mark: str) -> int:
        """Find GNU tail and stop followers a dead logger left (marked ``mark/...``); how
        many were stopped."""
        self._gnu = await self._engine.gnu_tail_path(self._cid)
        self._prepared = True
        return await self._engine.kill_marked(self._cid, f"{mark}/", exact=False)

    def container_stopped(self) -> None:
        """Nothing to do: every tail dies with the container and its stream ends."""

    async def stat(self, paths: list[str]) -> dict[str, tuple[int | None, int]]:
        """Through ``stat`` in the container; once it stopped (no exec), sizes from the
        archive endpoint, which knows no inode (the followers then match by content)."""
        try:
            return dict(await self._engine.stat_files(self._cid, paths))
        except LoonError:
            if await self._engine.running(self._cid):
                raise
        found: dict[str, tuple[int | None, int]] = {}
        for p in paths:
            try:
                size = await self._engine.file_size(self._cid, p)
            except ValueError:  # aiodocker reads a HEAD 404's empty body as JSON
                size = None
            if size is not None:
                found[p] = (None, size)
        return found

    async def read_at(self, path: str, offset: int, count: int,
                      inode: int | None = None) -> bytes:
        """Through ``tail | head`` in the container; once it stopped, the first ``count``
        bytes from ``offset`` of the archive endpoint's stream (it sends the file from its
        start: a fingerprint check costs a transfer of ``offset`` bytes then)."""
        try:
            return await self._engine.read_bytes_at(self._cid, path, offset, count)
        except LoonError:
            if await self._engine.running(self._cid):
                raise
        out = b""
        stream = self._engine.stream_file(self._cid, path, offset)
        try:
            async for chunk in stream:
                out += chunk
                if len(out) >= count:
                    break
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
        return out[:count]

    def open_follow(self, path: str, offset: int, mark: str, on_notice: Callable[[str], None],
                    follow: bool = True, inode: int | None = None
                    ) -> AbstractAsyncContextManager[Followed]:
        return self._engine.open_followed_file(self._cid, path, offset, self._gnu, mark,
                                               on_notice, follow=follow, inode=inode)

    async def file_size(self, path: str) -> int | None:
        return await self._engine.file_size(self._cid, path)

    def stream(self, path: str, offset: int) -> AsyncIterator[bytes]:
        return self._engine.stream_file(self._cid, path, offset)
