"""The only place that calls aiodocker's private API, each call naming what public API is
missing (aiodocker 0.24). Everything else in the package uses aiodocker's public API."""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import aiodocker
import aiohttp

_FRAME = struct.Struct(">BxxxL")  # the engine's exec frame header: stream, size


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


def replace_exec_parser(stream: aiodocker.stream.Stream, parser: Any) -> None:
    """Feed an attached exec stream's socket to ``parser`` (aiohttp's payload-parser protocol:
    ``feed_data``/``feed_eof``/``set_exception``/``is_eof``) instead of aiodocker's. What
    aiodocker already received is handed on first, in wire order: its parsed frames (from
    the upgrade response's tail), then the partial frame its parser still buffers (bytes
    that arrived right after the upgrade, cut anywhere, even inside a header), then its end
    or error. Without the partial buffer the next bytes would be read as a header.

    Missing public API: ``Stream.read_out()`` hands over one frame at a time, each as its own
    Message, queue entry and task wake-up; a follower of a service that writes a line at a
    time paid that per line (see engine/exec/frames.py FrameReader). Call it right after
    ``__aenter__``, with no await between.
    """
    resp = stream._resp  # noqa: SLF001
    assert resp is not None and resp.connection is not None
    protocol = resp.connection.protocol
    assert protocol is not None
    queue = stream._queue  # noqa: SLF001
    old = getattr(protocol, "_payload_parser", None)
    wire = bytearray()
    for msg, _ in list(getattr(queue, "_buffer", ())):
        wire += _FRAME.pack(msg.stream, len(msg.data)) + msg.data
    wire += bytes(getattr(old, "_buf", b""))
    if wire:
        parser.feed_data(bytes(wire))
    if queue is not None and queue.exception() is not None:
        parser.set_exception(queue.exception())
    elif queue is not None and queue.is_eof():
        parser.feed_eof()
    protocol.set_parser(parser, parser)


def exec_protocol(stream: aiodocker.stream.Stream) -> Any:
    """The aiohttp protocol under an attached exec stream (to pause and resume reading).
    Missing public API: aiodocker offers no flow control of its own on exec streams."""
    resp = stream._resp  # noqa: SLF001
    assert resp is not None and resp.connection is not None
    return resp.connection.protocol
