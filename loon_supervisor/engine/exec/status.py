"""The image's status command over one long-lived exec: a snapshot per run."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager

import aiodocker
import anyio

from loon_supervisor.engine.client import map_engine_errors
from loon_supervisor.engine.exec.commands import open_marked_exec
from loon_supervisor.engine.exec.frames import FrameReader, take_over_frames
from loon_supervisor.errors import LoonError

STATUS_END = "--loon-status-end--"


def status_loop_command(command: str, interval: float) -> list[str]:
    """One long-lived shell that runs ``command`` every ``interval`` seconds and ends each
    run's output with a ``STATUS_END`` line."""
    script = f'while :; do sh -c "$1" 2>&1; echo "{STATUS_END}"; sleep "$2"; done'
    return ["sh", "-c", script, "loon-status", command, f"{interval:g}"]


@asynccontextmanager
async def open_status_stream(docker: aiodocker.Docker, cid: str, command: str,
                             interval: float, mark: str) -> AsyncIterator[StatusStream]:
    """The status command's output every ``interval`` seconds over ONE exec, instead of an
    exec per poll: each exec costs the engine (dockerd, containerd, the shim and runc) tens
    of milliseconds of CPU, most of an idle deployment's engine load. The shell carries
    ``mark`` in its environment, like the followers, and is stopped on exit."""
    async with open_marked_exec(docker, cid, status_loop_command(command, interval), mark,
                                "watching the services' states") as stream:
        snapshots = StatusStream(take_over_frames(stream))
        try:
            yield snapshots
        finally:
            snapshots.close()


class StatusStream:
    """Snapshots of the status command's output, one per run (see :func:`open_status_stream`)."""

    def __init__(self, frames: FrameReader) -> None:
        self._frames = frames
        self._buf = b""
        self._end = f"\n{STATUS_END}\n".encode()

    async def next(self) -> bytes | None:
        """The next complete run's output; None when the stream ended."""
        while True:
            cut = (b"\n" + self._buf).find(self._end)
            if cut >= 0:
                out = self._buf[:max(cut - 1, 0)] if cut else b""
                self._buf = self._buf[cut + len(self._end) - 1:]
                return out
            await self._frames.wait()
            self._frames.notices.clear()
            data = self._frames.take()
            if data is None:
                if self._frames.error is not None:
                    with map_engine_errors("watching the services' states"):
                        raise self._frames.error
                return None
            self._buf += data

    def close(self) -> None:
        self._frames.close()


async def status_outputs(docker: aiodocker.Docker, cid: str, command: str, interval: float,
                         mark: str) -> AsyncGenerator[bytes, None]:
    """Every run's output of the status command, about every ``interval`` seconds, for as
    long as the caller iterates: over one long-lived exec (:func:`open_status_stream`),
    opened again after ``interval`` when it ends or breaks (a restarting container). Close it
    with ``contextlib.aclosing``."""
    while True:
        try:
            async with open_status_stream(docker, cid, command, interval, mark) as status:
                while (out := await status.next()) is not None:
                    yield out
        except LoonError:
            pass
        await anyio.sleep(interval)
