"""Files read through the engine's archive endpoint: works on a stopped container, where
no exec runs (the final collection)."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import tarfile
from collections.abc import AsyncIterator

import aiodocker

from loon_supervisor.engine import raw as rawapi
from loon_supervisor.engine.client import map_engine_errors


async def file_size(docker: aiodocker.Docker, cid: str, path: str) -> int | None:
    """Size of ``path`` in the container (also a stopped one) without reading it."""
    with map_engine_errors("looking at a log file"):
        try:
            async with rawapi.query(docker, f"containers/{cid}/archive", method="HEAD",
                                     params={"path": path}) as response:
                raw = response.headers.get("X-Docker-Container-Path-Stat", "")
        except aiodocker.DockerError as exc:
            if exc.status == 404:
                return None
            raise
    try:
        return int(json.loads(base64.b64decode(raw))["size"])
    except Exception:
        return None


async def stream_file(docker: aiodocker.Docker, cid: str, path: str, offset: int
                      ) -> AsyncIterator[bytes]:
    """The bytes of one file from ``offset`` on, streamed out of the engine's archive
    endpoint (works on a stopped container). Only this file is transferred, and nothing is
    held in memory beyond one chunk. The tar framing is parsed by hand because ``tarfile``
    cannot read from an asynchronous stream."""
    with map_engine_errors("collecting the final log bytes"):
        try:
            async with rawapi.query(docker, f"containers/{cid}/archive", params={"path": path},
                                     timeout=None) as response:
                content = response.content
                while True:
                    header = await content.readexactly(512)
                    if header == b"\0" * 512:
                        return
                    size = int(header[124:136].strip(b"\0 ") or b"0", 8)
                    kind = header[156:157]
                    padded = (size + 511) // 512 * 512
                    if kind not in (b"0", b"\0"):
                        await content.readexactly(padded)
                        continue
                    left, skip = size, min(offset, size)
                    while left:
                        chunk = await content.read(min(left, 1 << 16))
                        if not chunk:
                            return
                        left -= len(chunk)
                        if skip:
                            dropped = min(skip, len(chunk))
                            chunk, skip = chunk[dropped:], skip - dropped
                        if chunk:
                            yield chunk
                    return
        except aiodocker.DockerError as exc:
            if exc.status != 404:
                raise
        except asyncio.IncompleteReadError:
            return


async def read_files(docker: aiodocker.Docker, cid: str, directory: str) -> dict[str, bytes]:
    """Every regular file directly in ``directory``, also from a stopped container."""
    with map_engine_errors("collecting the final log bytes"):
        try:
            async with rawapi.query(docker, f"containers/{cid}/archive",
                                     params={"path": directory}, timeout=None) as response:
                data = await response.read()
        except aiodocker.DockerError as exc:
            if exc.status == 404:
                return {}
            raise
    out: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            parts = member.name.split("/")
            if member.isfile() and len(parts) == 2:
                f = tar.extractfile(member)
                if f is not None:
                    out[parts[1]] = f.read()
    return out
