"""The only place that calls aiodocker's private API, each call naming what public API is
missing (aiodocker 0.24). Everything else in the package uses aiodocker's public API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import aiodocker
import aiohttp


def query(docker: aiodocker.Docker, path: str, **kwargs: Any
          ) -> AbstractAsyncContextManager[aiohttp.ClientResponse]:
    """A raw request whose response we read ourselves.

    Missing public API: ``DockerContainer.log(follow=True)`` decodes every frame as UTF-8
    (dropping bad bytes) and ``get_archive`` loads the whole tar into memory; the archive
    ``HEAD`` (a file's size without its bytes) has no wrapper at all.
    """
    return docker._query(path, **kwargs)  # noqa: SLF001


def query_chunked_post(docker: aiodocker.Docker, path: str, **kwargs: Any
                       ) -> AbstractAsyncContextManager[aiohttp.ClientResponse]:
    """A streamed POST body. Missing public API: ``images.build`` takes the whole context
    as one in-memory file object, not an async iterator of chunks."""
    return docker._query_chunked_post(path, **kwargs)  # noqa: SLF001


async def query_json(docker: aiodocker.Docker, path: str, **kwargs: Any) -> Any:
    """Missing public API: ``services.update`` cannot change only the replica count
    (it needs the whole spec of the current version)."""
    return await docker._query_json(path, **kwargs)  # noqa: SLF001


def as_dict(item: Any) -> dict[str, Any]:
    """The listing's JSON of one container. Missing public API: ``containers.list`` returns
    ``DockerContainer`` objects whose listing data is only held privately."""
    return dict(item._container)  # noqa: SLF001


async def iter_chunks(response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    """The response body as it arrives (aiohttp's public API; here beside its callers)."""
    async for chunk in response.content.iter_any():
        yield chunk
