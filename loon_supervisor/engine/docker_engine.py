"""The engine as the code above this package sees it: one object per run, with the calls
the verbs, the lifecycle and the streams make. Nothing above ``engine/`` imports aiodocker;
the engine-free tests drive the lifecycle with a fake that has the same methods
(``tests/fakes/engine.py``)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

import aiodocker

from loon_supervisor.engine import client, containers, exec_streams, images
from loon_supervisor.engine.client import map_engine_errors
from loon_supervisor.engine.exec_source import ExecSource


class DockerEngine:
    """A connected engine (see :func:`loon_supervisor.engine.client.open_engine`)."""

    def __init__(self, docker: aiodocker.Docker) -> None:
        self.docker = docker

    async def version(self) -> dict[str, Any]:
        with map_engine_errors("asking for its version"):
            return dict(await self.docker.version())

    async def answers_anew(self) -> bool:
        """Whether the engine takes a new connection (see :func:`client.answers_anew`)."""
        return await client.answers_anew()

    # images
    async def build(self, req: images.BuildRequest, on_line: Callable[[str], None],
                    on_step: Callable[[str], None]) -> str:
        return await images.build_image(self.docker, req, on_line, on_step)

    async def read_contract(self, image: str) -> images.ImageContract:
        return await images.read_contract(self.docker, image)

    # containers
    async def create_and_start(self, spec: containers.ContainerSpec) -> str:
        return await containers.create_and_start(self.docker, spec)

    async def find(self, name: str) -> dict[str, Any] | None:
        return await containers.find(self.docker, name)

    async def list_ours(self, name: str | None = None) -> list[dict[str, Any]]:
        return await containers.list_ours(self.docker, name)

    async def inspect(self, cid: str) -> dict[str, Any] | None:
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
                          ) -> tuple[int, bytes]:
        return await exec_streams.run_capture(self.docker, cid, cmd, env=env)

    async def run_streaming(self, cid: str, cmd: list[str], env: dict[str, str],
                            workdir: str | None, on_output: Callable[[int, bytes], None]
                            ) -> int | None:
        return await exec_streams.run_streaming(self.docker, cid, cmd, env, workdir, on_output)

    async def run_feeding(self, cid: str, cmd: list[str], chunks: AsyncIterator[bytes],
                          env: dict[str, str] | None = None) -> tuple[int, bytes]:
        return await exec_streams.run_feeding(self.docker, cid, cmd, chunks, env)

    def container_output(self, cid: str, skip: int = 0) -> AsyncIterator[bytes]:
        return exec_streams.container_output(self.docker, cid, skip)

    def status_outputs(self, cid: str, command: str, interval: float, mark: str
                       ) -> AsyncGenerator[bytes, None]:
        return exec_streams.status_outputs(self.docker, cid, command, interval, mark)

    def exec_source(self, cid: str) -> ExecSource:
        return ExecSource(self.docker, cid)
