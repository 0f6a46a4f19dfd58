"""The container's own output (stdout and stderr) from the engine's stored log, as raw bytes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiodocker

from loon_supervisor.engine import raw as rawapi
from loon_supervisor.engine.client import map_engine_errors
from loon_supervisor.engine.exec.frames import HEADER


async def container_output(docker: aiodocker.Docker, cid: str, skip: int = 0
                           ) -> AsyncIterator[bytes]:
    """The container's own stdout/stderr, raw bytes (aiodocker's log() drops bad UTF-8),
    from its first byte with the first ``skip`` bytes left out.

    Resuming by byte count instead of ``since`` needs no clock (the engine's and ours
    differ, and ``since`` has second precision): the engine's stored log is the same byte
    sequence on every read, so a re-read that skips what the file already has continues
    exactly at the seam.
    """
    with map_engine_errors("following the container's output"):
        async with rawapi.query(docker,
            f"containers/{cid}/logs",
            params={"follow": "1", "stdout": "1", "stderr": "1"},
            timeout=None,
        ) as response:
            tty = response.headers.get("Content-Type", "") == "application/vnd.docker.raw-stream"
            buf = bytearray()
            async for chunk in response.content.iter_any():
                if tty:
                    out = bytearray(chunk)
                else:
                    buf += chunk
                    out = bytearray()
                    pos = 0
                    while len(buf) - pos >= HEADER.size:
                        _, size = HEADER.unpack_from(buf, pos)
                        if len(buf) - pos < HEADER.size + size:
                            break
                        out += buf[pos + HEADER.size:pos + HEADER.size + size]
                        pos += HEADER.size + size
                    del buf[:pos]
                if skip:
                    dropped = min(skip, len(out))
                    del out[:dropped]
                    skip -= dropped
                if out:
                    yield bytes(out)
