"""The engine as the code above this package sees it: one object per run, with the calls
the verbs, the lifecycle and the streams make (the protocols of :mod:`loon_supervisor.
engine.base`), answering with the typed records of :mod:`loon_supervisor.engine.records`.
Nothing above ``engine/`` imports aiodocker; the engine-free tests drive the lifecycle with
a fake that implements the same ``ContainerEngine`` (``tests/fakes/engine.py``)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import aiodocker

from loon_supervisor.engine import client, containers, image_store, images, pull, remote_paths
from loon_supervisor.engine.client import map_engine_errors
from loon_supervisor.engine.exec import archive, commands, container_log, status, tail
from loon_supervisor.engine.records import (
    ContainerInfo,
    ContainerSummary,
    EngineVersion,
    ExecResult,
    ImageInfo,
)
from loon_supervisor.engine.swarm import Swarm

if TYPE_CHECKING:
    from loon_supervisor.engine.base import Engine


class DockerEngine:
    """A connected engine (see :func:`loon_supervisor.engine.client.open_engine`)."""

    def __init__(self, docker: aiodocker.Docker) -> None:
        self.docker = docker  # for engine/ only: the layers above call the methods
        self.swarm = Swarm(docker)

    async def version(self) -> EngineVersion:
        with map_engine_errors("asking for its version"):
            return EngineVersion.from_docker(await self.docker.version())

    async def answers_anew(self) -> bool:
        """Whether the engine takes a new connection (see :func:`client.answers_anew`)."""
        return await client.answers_anew()

    # images
    async def build(self, req: images.BuildRequest, on_line: Callable[[str], None],
                    on_step: Callable[[str], None]) -> str:
        return await images.build_image(self.docker, req, on_line, on_step)

    async def read_contract(self, image: str) -> images.ImageContract:
        return await images.read_contract(self.docker, image)

    async def image_inspect(self, ref: str) -> ImageInfo | None:
        return await image_store.inspect(self.docker, ref)

    async def image_tag(self, image: str, ref: str) -> None:
        await image_store.tag(self.docker, image, ref)

    async def images_labelled(self, label: str, value: str) -> list[ImageInfo]:
        return await image_store.labelled(self.docker, label, value)

    async def image_delete(self, ref: str) -> str | None:
        return await image_store.delete(self.docker, ref)

    async def dangling_image_ids(self) -> set[str]:
        return await image_store.dangling_ids(self.docker)

    async def pull(self, reference: str, on_event: Callable[[dict[str, Any]], None]) -> None:
        await pull.pull(self.docker, reference, on_event)

    async def ensure_on_engine(self, image: str, where: str, dirs: list[tuple[str, str]],
                               files: list[tuple[str, str]] | None = None) -> list[str]:
        """Volume directories made on a remote engine's machine (engine/remote_paths.py)."""
        return await remote_paths.ensure_on_engine(self.docker, image, where, dirs, files)

    # containers
    async def create_and_start(self, spec: containers.ContainerSpec) -> str:
        return await containers.create_and_start(self.docker, spec)

    async def find(self, name: str) -> ContainerSummary | None:
        return await containers.find(self.docker, name)

    async def list_ours(self, name: str | None = None) -> list[ContainerSummary]:
        return await containers.list_ours(self.docker, name)

    async def inspect(self, cid: str) -> ContainerInfo | None:
        return await containers.inspect(self.docker, cid)

    async def wait_exit(self, cid: str) -> int:
        return await containers.wait_exit(self.docker, cid)

    async def stop(self, cid: str, timeout: int | None = None) -> None:
        await containers.stop(self.docker, cid, timeout)

    async def kill(self, cid: str) -> None:
        await containers.kill(self.docker, cid)

    async def remove(self, cid: str) -> None:
        await containers.remove(self.docker, cid)

    async def restart(self, cid: str) -> None:
        await containers.restart(self.docker, cid)

    # inside a container
    async def run_capture(self, cid: str, cmd: list[str], env: dict[str, str] | None = None
                          ) -> ExecResult:
        return ExecResult(*await commands.run_capture(self.docker, cid, cmd, env=env))

    async def run_streaming(self, cid: str, cmd: list[str], env: dict[str, str],
                            workdir: str | None, on_output: Callable[[int, bytes], None]
                            ) -> int | None:
        return await commands.run_streaming(self.docker, cid, cmd, env, workdir, on_output)

    async def run_feeding(self, cid: str, cmd: list[str], chunks: AsyncIterator[bytes],
                          env: dict[str, str] | None = None) -> ExecResult:
        return ExecResult(*await commands.run_feeding(self.docker, cid, cmd, chunks, env))

    def container_output(self, cid: str, skip: int = 0) -> AsyncIterator[bytes]:
        return container_log.container_output(self.docker, cid, skip)

    def status_outputs(self, cid: str, command: str, interval: float, mark: str
                       ) -> AsyncGenerator[bytes, None]:
        return status.status_outputs(self.docker, cid, command, interval, mark)

    # a container's log files (the exec log source, streams/sources/exec.py)
    async def gnu_tail_path(self, cid: str) -> str | None:
        return await commands.gnu_tail_path(self.docker, cid)

    async def kill_marked(self, cid: str, mark: str, exact: bool) -> int:
        return await commands.kill_marked(self.docker, cid, mark, exact)

    async def stat_files(self, cid: str, paths: list[str]) -> dict[str, tuple[int, int]]:
        return await commands.stat_files(self.docker, cid, paths)

    async def read_bytes_at(self, cid: str, path: str, offset: int, count: int) -> bytes:
        return await commands.read_bytes_at(self.docker, cid, path, offset, count)

    async def file_size(self, cid: str, path: str) -> int | None:
        return await archive.file_size(self.docker, cid, path)

    def stream_file(self, cid: str, path: str, offset: int) -> AsyncIterator[bytes]:
        return archive.stream_file(self.docker, cid, path, offset)

    def open_followed_file(self, cid: str, path: str, offset: int, gnu: str | None, mark: str,
                           on_notice: Callable[[str], None], follow: bool = True,
                           inode: int | None = None, coalesce: float | None = None
                           ) -> AbstractAsyncContextManager[tail.FollowedFile]:
        return tail.open_followed_file(self.docker, cid, path, offset, gnu, mark, on_notice,
                                       follow=follow, inode=inode, coalesce=coalesce)

    async def running(self, cid: str) -> bool:
        """Whether the container runs now; False also when the engine cannot say."""
        try:
            info = await self.docker.containers.container(cid).show()
        except Exception:
            return False
        return ContainerInfo.from_docker(info).running


if TYPE_CHECKING:
    def _implements(engine: DockerEngine) -> Engine:  # mypy checks the whole interface here
        return engine
