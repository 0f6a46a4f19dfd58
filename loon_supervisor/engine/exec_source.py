"""The in-container files of a deployment read through exec (``tail``, ``stat``) and the
archive endpoint: the :class:`~loon_supervisor.streams.source.LogSource` that works with any
engine, local or remote, and any image with a shell userland."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

import aiodocker

from loon_supervisor.engine import exec_streams
from loon_supervisor.errors import LoonError


class ExecSource:
    """One container's log files, followed by marked ``tail`` execs."""

    kind = "exec"

    def __init__(self, docker: aiodocker.Docker, cid: str) -> None:
        self._docker = docker
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
        self._gnu = await exec_streams.gnu_tail_path(self._docker, self._cid)
        self._prepared = True
        return await exec_streams.kill_marked(self._docker, self._cid, f"{mark}/", exact=False)

    def container_stopped(self) -> None:
        """Nothing to do: every tail dies with the container and its stream ends."""

    async def stat(self, paths: list[str]) -> dict[str, tuple[int | None, int]]:
        """Through ``stat`` in the container; once it stopped (no exec), sizes from the
        archive endpoint, which knows no inode (the followers then match by content)."""
        try:
            return dict(await exec_streams.stat_files(self._docker, self._cid, paths))
        except LoonError:
            if await self._running():
                raise
        found: dict[str, tuple[int | None, int]] = {}
        for p in paths:
            try:
                size = await exec_streams.file_size(self._docker, self._cid, p)
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
            return await exec_streams.read_bytes_at(self._docker, self._cid, path, offset,
                                                    count)
        except LoonError:
            if await self._running():
                raise
        out = b""
        stream = exec_streams.stream_file(self._docker, self._cid, path, offset)
        try:
            async for chunk in stream:
                out += chunk
                if len(out) >= count:
                    break
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
        return out[:count]

    async def _running(self) -> bool:
        try:
            info = await self._docker.containers.container(self._cid).show()
        except Exception:
            return False
        return bool((info.get("State") or {}).get("Running"))

    def open_follow(self, path: str, offset: int, mark: str, on_notice: Callable[[str], None],
                    follow: bool = True, inode: int | None = None
                    ) -> AbstractAsyncContextManager[exec_streams.FollowedFile]:
        return exec_streams.open_followed_file(self._docker, self._cid, path, offset,
                                               self._gnu, mark, on_notice, follow=follow,
                                               inode=inode)

    async def file_size(self, path: str) -> int | None:
        return await exec_streams.file_size(self._docker, self._cid, path)

    def stream(self, path: str, offset: int) -> AsyncIterator[bytes]:
        return exec_streams.stream_file(self._docker, self._cid, path, offset)
