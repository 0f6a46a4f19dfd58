"""Opening the engine and translating its errors at the boundary."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import aiodocker
import aiohttp

from loon_supervisor.errors import EngineError, EngineUnreachable


@contextmanager
def map_engine_errors(doing: str) -> Iterator[None]:
    """Turn aiodocker/aiohttp failures into EngineError with what we were doing."""
    try:
        yield
    except aiodocker.DockerError as exc:
        if exc.status == 900:
            raise EngineUnreachable(
                f"cannot reach the Docker engine while {doing}: {exc.message}. Is dockerd "
                "running (see scripts/ensure-docker.sh) and DOCKER_HOST right?"
            ) from None
        raise EngineError(f"the Docker engine refused {doing}: {exc.message}") from None
    except (aiohttp.ClientError, OSError) as exc:
        raise EngineUnreachable(f"lost the Docker engine while {doing}: {exc}") from None


@asynccontextmanager
async def open_engine() -> AsyncIterator[aiodocker.Docker]:
    """One client per run; DOCKER_HOST selects a remote engine."""
    with map_engine_errors("connecting"):
        docker = aiodocker.Docker()
    try:
        with map_engine_errors("asking for its version"):
            await docker.version()
        yield docker
    finally:
        await docker.close()
