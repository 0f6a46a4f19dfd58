"""Byte streams out of a running container: followed log files, command output, archives.

A followed file is an exec of ``tail -c +N -F`` so that any image with a shell userland can
be followed, locally or on a remote engine. GNU tail follows with inotify on the log volume
(no polling); busybox tail can only poll once a second, which we accept as a fallback.
"""

from __future__ import annotations

import io
import struct
import tarfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import aiodocker
import anyio

from loon_supervisor.engine.client import map_engine_errors

_HEADER = struct.Struct(">BxxxL")


async def run_capture(docker: aiodocker.Docker, cid: str, cmd: list[str],
                      limit: int = 1 << 20) -> tuple[int, bytes]:
    """Run a short command in the container; (exit code, stdout+stderr)."""
    with map_engine_errors(f"running {cmd[0]} in the container"):
        ex = await docker.containers.container(cid).exec(cmd, stdout=True, stderr=True)
        out = bytearray()
        async with ex.start(detach=False) as stream:
            while (msg := await stream.read_out()) is not None:
                if len(out) < limit:
                    out += msg.data
        info = await ex.inspect()
    return int(info.get("ExitCode") or 0), bytes(out)


async def has_gnu_tail(docker: aiodocker.Docker, cid: str) -> bool:
    try:
        code, out = await run_capture(docker, cid, ["tail", "--version"])
    except Exception:
        return False
    return code == 0 and b"GNU coreutils" in out


def follow_command(path: str, offset: int, gnu: bool) -> list[str]:
    """``tail`` from byte ``offset`` (0-based), following renames and re-creation."""
    if gnu:
        return ["tail", "-c", f"+{offset + 1}", "-F", "-s", "0.05", path]
    return ["tail", "-c", f"+{offset + 1}", "-F", path]


class FollowedFile:
    """An attached ``tail``: ``receive()`` gives stdout bytes; None at end of stream."""

    def __init__(self, stream: aiodocker.stream.Stream, on_stderr: Callable[[bytes], None]
                 ) -> None:
        self._stream = stream
        self._on_stderr = on_stderr

    async def receive(self) -> bytes | None:
        while True:
            with map_engine_errors("reading a log stream"):
                msg = await self._stream.read_out()
            if msg is None:
                return None
            if msg.stream == 2:
                self._on_stderr(msg.data)
                continue
            return msg.data


@asynccontextmanager
async def open_followed_file(docker: aiodocker.Docker, cid: str, path: str, offset: int,
                             gnu: bool, on_stderr: Callable[[bytes], None]
                             ) -> AsyncIterator[FollowedFile]:
    """Attach; on exit, stop the in-container tail (closing the stream does not)."""
    container = docker.containers.container(cid)
    with map_engine_errors("attaching to a log file"):
        ex = await container.exec(follow_command(path, offset, gnu), stdout=True, stderr=True)
        stream = ex.start(detach=False)
        await stream.__aenter__()
    try:
        yield FollowedFile(stream, on_stderr)
    finally:
        with anyio.CancelScope(shield=True), anyio.move_on_after(5):
            await stream.close()
            try:
                info = await ex.inspect()
                if info.get("Running") and info.get("Pid"):
                    # The Pid is the host's; find the tail by its command line instead.
                    await _kill_exec(docker, cid, path, offset)
            except Exception:
                pass


async def _kill_exec(docker: aiodocker.Docker, cid: str, path: str, offset: int) -> None:
    pattern = f"tail -c +{offset + 1} -F"
    script = (f"for p in /proc/[0-9]*; do c=$(tr '\\0' ' ' < $p/cmdline 2>/dev/null); "
              f"case \"$c\" in \"{pattern}\"*\"{path} \") kill ${{p#/proc/}};; esac; done")
    await run_capture(docker, cid, ["sh", "-c", script])


async def container_output(docker: aiodocker.Docker, cid: str, since: int = 0
                           ) -> AsyncIterator[bytes]:
    """The container's own stdout/stderr, raw bytes (aiodocker's log() drops bad UTF-8)."""
    with map_engine_errors("following the container's output"):
        async with docker._query(
            f"containers/{cid}/logs",
            params={"follow": "1", "stdout": "1", "stderr": "1", "since": str(since)},
            timeout=None,
        ) as response:
            tty = response.headers.get("Content-Type", "") == "application/vnd.docker.raw-stream"
            buf = bytearray()
            async for chunk in response.content.iter_any():
                if tty:
                    yield chunk
                    continue
                buf += chunk
                out = bytearray()
                while len(buf) >= _HEADER.size:
                    _, size = _HEADER.unpack_from(buf)
                    if len(buf) < _HEADER.size + size:
                        break
                    out += buf[_HEADER.size:_HEADER.size + size]
                    del buf[:_HEADER.size + size]
                if out:
                    yield bytes(out)


async def read_files(docker: aiodocker.Docker, cid: str, directory: str) -> dict[str, bytes]:
    """Every regular file directly in ``directory``, also from a stopped container."""
    with map_engine_errors("collecting the final log bytes"):
        try:
            async with docker._query(f"containers/{cid}/archive",
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
