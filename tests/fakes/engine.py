"""A fake engine for the engine-free tests of the lifecycle (as honcho tests its Manager
with fake processes): containers are flags and events, their log directory an in-memory
file system with inodes, so renames, truncation and late bytes can be scripted exactly."""

from __future__ import annotations

import itertools
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field

import anyio

from loon_supervisor.engine.base import FileEvent
from loon_supervisor.engine.containers import DEPLOYMENT_LABEL, TOOL_LABEL, ContainerSpec
from loon_supervisor.engine.records import (
    ContainerInfo,
    ContainerSummary,
    EngineVersion,
    ExecResult,
)

_inodes = itertools.count(100)


@dataclass
class FakeFile:
    inode: int
    data: bytearray = field(default_factory=bytearray)


class FakeFS:
    """Paths to files; a file keeps its inode across renames, as on a real file system."""

    def __init__(self) -> None:
        self.paths: dict[str, FakeFile] = {}
        self.changed = anyio.Event()

    def _notify(self) -> None:
        self.changed.set()
        self.changed = anyio.Event()

    def append(self, path: str, data: bytes) -> None:
        f = self.paths.get(path)
        if f is None:
            f = self.paths[path] = FakeFile(next(_inodes))
        f.data += data
        self._notify()

    def rename(self, old: str, new: str) -> None:
        self.paths[new] = self.paths.pop(old)
        self._notify()

    def truncate(self, path: str) -> None:
        del self.paths[path].data[:]
        self._notify()


@dataclass
class FakeContainer:
    cid: str
    spec: ContainerSpec
    fs: FakeFS = field(default_factory=FakeFS)
    output: bytearray = field(default_factory=bytearray)
    running: bool = True
    exit_code: int = 0
    stopped: anyio.Event = field(default_factory=anyio.Event)
    status: bytes = b""
    pace: tuple[float, int] | None = None  # the final collection's speed (seconds, bytes)
    started_at: str = "2026-01-01T00:00:00Z"
    restart_count: int = 0

    def exit(self, code: int) -> None:
        self.running, self.exit_code = False, code
        self.stopped.set()
        self.fs._notify()

    @property
    def labels(self) -> dict[str, str]:
        return {**self.spec.labels, TOOL_LABEL: "1", DEPLOYMENT_LABEL: self.spec.name}

    def summary(self) -> ContainerSummary:
        """As the engine lists it."""
        state = "running" if self.running else "exited"
        return ContainerSummary(
            id=self.cid, name=self.spec.name, image=self.spec.image, state=state,
            status="Up" if self.running else f"Exited ({self.exit_code})", labels=self.labels)

    def info(self) -> ContainerInfo:
        """As the engine inspects it."""
        return ContainerInfo(
            id=self.cid, name=self.spec.name, image=self.spec.image, running=self.running,
            exit_code=self.exit_code, started_at=self.started_at,
            restart_count=self.restart_count, labels=self.labels, env=dict(self.spec.env),
            stop_timeout=self.spec.stop_timeout)


class FakeFollowed:
    def __init__(self, container: FakeContainer, path: str, offset: int, follow: bool) -> None:
        self.c, self.path, self.pos, self.follow = container, path, offset, follow
        self.file = container.fs.paths[path]
        self.event: FileEvent | None = None

    async def receive(self) -> bytes | None:
        while True:
            if self.pos < len(self.file.data):
                chunk = bytes(self.file.data[self.pos:])
                self.pos += len(chunk)
                return chunk
            if self.pos > len(self.file.data):  # truncated under us
                self.event = "truncated"
                return None
            if not self.follow:
                return None
            now = self.c.fs.paths.get(self.path)
            if now is not self.file:
                self.event = "replaced"
                return None
            if not self.c.running:
                return None  # the exec ends with the container
            await self.c.fs.changed.wait()


class FakeSource:
    kind = "fake"

    def __init__(self, container: FakeContainer) -> None:
        self.c = container
        self.opened: list[tuple[str, int]] = []

    def describe(self) -> str:
        return "the fake engine's file system"

    async def prepare(self, mark: str) -> int:
        return 0

    def container_stopped(self) -> None:
        """The fake's followers end with the container on their own (as tail's do)."""

    async def stat(self, paths: list[str]) -> dict[str, tuple[int, int]]:
        return {p: (f.inode, len(f.data)) for p in paths if (f := self.c.fs.paths.get(p))}

    async def read_at(self, path: str, offset: int, count: int,
                      inode: int | None = None) -> bytes:
        return bytes(self.c.fs.paths[path].data[offset:offset + count])

    @asynccontextmanager
    async def open_follow(self, path: str, offset: int, mark: str,
                          on_notice: Callable[[str], None], follow: bool = True,
                          inode: int | None = None) -> AsyncIterator[FakeFollowed]:
        self.opened.append((path, offset))
        yield FakeFollowed(self.c, path, offset, follow)

    async def file_size(self, path: str) -> int | None:
        f = self.c.fs.paths.get(path)
        return None if f is None else len(f.data)

    async def stream(self, path: str, offset: int) -> AsyncIterator[bytes]:
        f = self.c.fs.paths.get(path)
        if f is None or len(f.data) <= offset:
            return
        if not self.c.pace:
            yield bytes(f.data[offset:])
            return
        seconds, size = self.c.pace  # a slow engine: ``size`` bytes every ``seconds``
        for at in range(offset, len(f.data), size):
            await anyio.sleep(seconds)
            yield bytes(f.data[at:at + size])


class FakeEngine:
    """Records every lifecycle call in ``calls``; ``hang`` names calls that never return.
    Implements :class:`loon_supervisor.engine.base.ContainerEngine` with the same records
    as the real engine."""

    def __init__(self) -> None:
        self.containers: dict[str, FakeContainer] = {}
        self.calls: list[str] = []
        self.hang: set[str] = set()
        self._ids = itertools.count(1)

    async def _maybe_hang(self, call: str) -> None:
        self.calls.append(call)
        if call in self.hang:
            await anyio.sleep_forever()

    async def version(self) -> EngineVersion:
        return EngineVersion(version="fake")

    async def answers_anew(self) -> bool:
        return True

    async def find(self, name: str) -> ContainerSummary | None:
        for c in self.containers.values():
            if c.spec.name == name:
                return c.summary()
        return None

    async def list_ours(self, name: str | None = None) -> list[ContainerSummary]:
        return [c.summary() for c in self.containers.values()
                if name is None or c.spec.name == name]

    async def create_and_start(self, spec: ContainerSpec) -> str:
        await self._maybe_hang("create_and_start")
        cid = f"fake{next(self._ids):060d}"
        self.containers[cid] = FakeContainer(cid, spec)
        return cid

    async def inspect(self, cid: str) -> ContainerInfo | None:
        c = self.containers.get(cid)
        return None if c is None else c.info()

    async def wait_exit(self, cid: str) -> int:
        c = self.containers[cid]
        await c.stopped.wait()
        return c.exit_code

    async def stop(self, cid: str, timeout: int | None = None) -> None:
        await self._maybe_hang("stop")
        c = self.containers[cid]
        if c.running:
            c.exit(0)

    async def kill(self, cid: str) -> None:
        await self._maybe_hang("kill")
        c = self.containers[cid]
        if c.running:
            c.exit(137)

    async def remove(self, cid: str) -> None:
        await self._maybe_hang("remove")
        self.containers.pop(cid, None)

    async def run_capture(self, cid: str, cmd: list[str], env: dict[str, str] | None = None
                          ) -> ExecResult:
        return ExecResult(0, self.containers[cid].status)

    async def status_outputs(self, cid: str, command: str, interval: float, mark: str
                             ) -> AsyncGenerator[bytes, None]:
        while True:
            await anyio.sleep(interval)
            yield self.containers[cid].status

    async def container_output(self, cid: str, skip: int = 0) -> AsyncIterator[bytes]:
        c = self.containers[cid]
        pos = skip
        while True:
            if pos < len(c.output):
                chunk = bytes(c.output[pos:])
                pos += len(chunk)
                yield chunk
                continue
            if not c.running:
                return
            await c.fs.changed.wait()

    # the container files the exec source reads (streams/sources/exec.py's ContainerFiles),
    # served by the fake file system
    def exec_source(self, cid: str) -> FakeSource:
        return FakeSource(self.containers[cid])

    async def gnu_tail_path(self, cid: str) -> str | None:
        return None

    async def kill_marked(self, cid: str, mark: str, exact: bool) -> int:
        return 0

    async def stat_files(self, cid: str, paths: list[str]) -> dict[str, tuple[int, int]]:
        return await self.exec_source(cid).stat(paths)

    async def read_bytes_at(self, cid: str, path: str, offset: int, count: int) -> bytes:
        return await self.exec_source(cid).read_at(path, offset, count)

    async def file_size(self, cid: str, path: str) -> int | None:
        return await self.exec_source(cid).file_size(path)

    def stream_file(self, cid: str, path: str, offset: int) -> AsyncIterator[bytes]:
        return self.exec_source(cid).stream(path, offset)

    def open_followed_file(self, cid: str, path: str, offset: int, gnu: str | None, mark: str,
                           on_notice: Callable[[str], None], follow: bool = True,
                           inode: int | None = None, coalesce: float | None = None
                           ) -> AbstractAsyncContextManager[FakeFollowed]:
        return self.exec_source(cid).open_follow(path, offset, mark, on_notice, follow, inode)

    async def running(self, cid: str) -> bool:
        c = self.containers.get(cid)
        return c is not None and c.running
