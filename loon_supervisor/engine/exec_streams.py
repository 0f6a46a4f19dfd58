"""Byte streams out of a running container: followed log files, command output, archives.

A followed file is an exec of ``tail -c +N -F`` so that any image with a shell userland can
be followed, locally or on a remote engine. GNU tail follows with inotify on the log volume
(no polling); busybox tail can only poll once a second, which we accept as a fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import shlex
import struct
import tarfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Literal

import aiodocker
import anyio

from loon_supervisor.engine import raw as rawapi
from loon_supervisor.engine.client import map_engine_errors

_HEADER = struct.Struct(">BxxxL")


async def run_capture(docker: aiodocker.Docker, cid: str, cmd: list[str],
                      limit: int = 1 << 20, env: dict[str, str] | None = None
                      ) -> tuple[int, bytes]:
    """Run a short command in the container; (exit code, stdout+stderr). ``env`` reaches
    the command without appearing on its command line (passwords)."""
    with map_engine_errors(f"running {cmd[0]} in the container"):
        ex = await docker.containers.container(cid).exec(
            cmd, stdout=True, stderr=True,
            environment=[f"{k}={v}" for k, v in (env or {}).items()] or None)
        out = bytearray()
        async with ex.start(detach=False) as stream:
            while (msg := await stream.read_out()) is not None:
                if len(out) < limit:
                    out += msg.data
        info = await ex.inspect()
    return int(info.get("ExitCode") or 0), bytes(out)


async def run_streaming(docker: aiodocker.Docker, cid: str, cmd: list[str],
                        env: dict[str, str], workdir: str | None,
                        on_output: Callable[[int, bytes], None]) -> int | None:
    """Run a command, handing each output frame (1 stdout, 2 stderr) on as it comes; its
    exit code (None when the engine did not say)."""
    with map_engine_errors(f"running {cmd[0]} in the container"):
        ex = await docker.containers.container(cid).exec(
            cmd, stdout=True, stderr=True, environment=env, workdir=workdir)
        async with ex.start(detach=False) as stream:
            while (msg := await stream.read_out()) is not None:
                on_output(msg.stream, msg.data)
        info = await ex.inspect()
    code = info.get("ExitCode")
    return int(code) if code is not None else None


async def gnu_tail_path(docker: aiodocker.Docker, cid: str) -> str | None:
    """Where GNU tail is in the image, if anywhere. Followers run it by absolute path: a
    busybox shell would otherwise run its own ``tail`` applet."""
    script = ('for t in /usr/bin/tail /bin/tail /usr/local/bin/tail; do '
              'if "$t" --version 2>/dev/null | grep -q "GNU coreutils"; then echo "$t"; '
              'exit 0; fi; done; exit 1')
    try:
        code, out = await run_capture(docker, cid, ["sh", "-c", script])
    except Exception:
        return None
    path = out.decode(errors="replace").strip()
    return path if code == 0 and path.startswith("/") else None


FOLLOWER_ENV = "LOON_FOLLOWER"
HOLD_GRACE = 0.2


def follow_command(path: str, offset: int, gnu: str | None, follow: bool = True) -> list[str]:
    """``tail`` from byte ``offset`` (0-based), following renames and re-creation.

    stderr is merged into stdout inside the container: tail (GNU's error(), busybox's
    direct writes) writes its notices after the data before them, so a rotation notice sits
    exactly at the seam between the old and the new file in one ordered stream.
    """
    args = [gnu or "tail", "-c", f"+{offset + 1}"]
    if follow:
        args += ["-F", "-s", "0.05"] if gnu else ["-F"]
    return ["sh", "-c", f"exec {shlex.join(args)} {shlex.quote(path)} 2>&1"]


Event = Literal["replaced", "truncated"]


class FollowedFile:
    """An attached ``tail``: ``receive()`` gives stdout bytes, None at end of stream; after a
    rotation notice it ends early and ``event`` says which (see :func:`split_notice`)."""

    def __init__(self, stream: aiodocker.stream.Stream, path: str,
                 on_notice: Callable[[str], None], program: str = "tail") -> None:
        self._stream = stream
        self._path = path
        self._program = program
        self._on_notice = on_notice
        self._held = b""
        self.event: Event | None = None

    async def _read(self) -> bytes | None:
        while True:
            with map_engine_errors("reading a log stream"):
                msg = await self._stream.read_out()
            if msg is None:
                return None
            if msg.stream == 2:
                self._on_notice(msg.data.decode(errors="replace").strip())
                continue
            return msg.data

    async def receive(self) -> bytes | None:
        if self.event is not None:
            return None
        while True:
            if self._held:
                data = None
                with anyio.move_on_after(HOLD_GRACE) as scope:
                    data = await self._read()
                if scope.cancelled_caught:  # nothing more came: the held bytes were data
                    out, self._held = self._held, b""
                    return out
            else:
                data = await self._read()
            if data is None:
                out, self._held = self._held, b""
                return out or None
            out, notice, rest = split_notice(self._held + data, self._path, self._program)
            self._held = b""
            if notice is not None:
                self._on_notice(notice.decode(errors="replace").strip())
                ev = classify(notice)
                if ev is not None:
                    self.event = ev
                    return out or None
                out += rest
                rest = b""
            out, self._held = hold_back(out, self._program)
            if out:
                return out


def split_notice(data: bytes, path: str, program: str = "tail"
                 ) -> tuple[bytes, bytes | None, bytes]:
    """(data before, the first complete tail notice about ``path`` or None, data after).
    Notices start with the program name tail was run as (``/usr/bin/tail: ...``)."""
    m = _notice_re(path, program).search(data)
    if m is None:
        return data, None, b""
    return data[:m.start()], m.group(0), data[m.end():]


def classify(notice: bytes) -> Event | None:
    if b"truncated" in notice:
        return "truncated"
    if any(w in notice for w in (b"replaced", b"appeared", b"inaccessible", b"cannot open",
                                 b"No such file")):
        return "replaced"
    return None


def hold_back(data: bytes, program: str = "tail") -> tuple[bytes, bytes]:
    """Keep back what may be the start of a notice split across reads: an unterminated
    ``tail: ...`` (short), or a tail of the data that is a prefix of ``tail: ``."""
    head = program.encode() + b": "
    cut = data.rfind(head, max(0, len(data) - 4096))
    if cut >= 0 and b"\n" not in data[cut:]:
        return data[:cut], data[cut:]
    for k in range(min(len(head) - 1, len(data)), 0, -1):
        if head.startswith(data[-k:]):
            return data[:-k], data[-k:]
    return data, b""


def _notice_re(path: str, program: str) -> re.Pattern[bytes]:
    p, head = re.escape(path.encode()), re.escape(program.encode() + b": ")
    return re.compile(head + rb"(?:[^\n]{0,40}?)'?" + p + rb"'?[: ][^\n]*\n|" +
                      head + rb"inotify[^\n]*\n")


@asynccontextmanager
async def open_followed_file(docker: aiodocker.Docker, cid: str, path: str, offset: int,
                             gnu: str | None, mark: str, on_notice: Callable[[str], None],
                             follow: bool = True) -> AsyncIterator[FollowedFile]:
    """Attach a ``tail`` carrying ``mark`` in its environment; on exit, stop it (closing
    the stream does not), whether or not the engine answered when the stream closed."""
    container = docker.containers.container(cid)
    with map_engine_errors("attaching to a log file"):
        ex = await container.exec(follow_command(path, offset, gnu, follow), stdout=True,
                                  stderr=True, environment={FOLLOWER_ENV: mark})
        stream = ex.start(detach=False)
        await stream.__aenter__()
    try:
        yield FollowedFile(stream, path, on_notice, gnu or "tail")
    finally:
        with anyio.CancelScope(shield=True), anyio.move_on_after(5):
            await stream.close()
            if follow:
                with contextlib.suppress(Exception):
                    await kill_marked(docker, cid, mark, exact=True)


async def kill_marked(docker: aiodocker.Docker, cid: str, mark: str, exact: bool) -> int:
    """Kill the container's processes whose environment carries ``LOON_FOLLOWER=mark``
    (``exact``) or ``LOON_FOLLOWER=mark...``; how many."""
    flag = "-qxF" if exact else "-qF"
    script = ('n=0; for p in /proc/[0-9]*; do '
              f'if tr "\\0" "\\n" < $p/environ 2>/dev/null | grep {flag} -e "$1"; then '
              'kill ${p#/proc/} 2>/dev/null && n=$((n+1)); fi; done; echo $n')
    _, out = await run_capture(docker, cid, ["sh", "-c", script, "kill-followers",
                                             f"{FOLLOWER_ENV}={mark}"])
    try:
        return int(out.split()[-1])
    except (ValueError, IndexError):
        return 0


async def stat_files(docker: aiodocker.Docker, cid: str, paths: list[str]
                     ) -> dict[str, tuple[int, int]]:
    """(inode, size) of each of ``paths`` that exists in the running container."""
    script = 'for f in "$@"; do stat -c "%i %s %n" "$f" 2>/dev/null; done; true'
    _, out = await run_capture(docker, cid, ["sh", "-c", script, "stat", *paths])
    found: dict[str, tuple[int, int]] = {}
    for line in out.decode(errors="replace").splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[0].isdigit() and parts[1].isdigit():
            found[parts[2]] = (int(parts[0]), int(parts[1]))
    return found


async def read_bytes_at(docker: aiodocker.Docker, cid: str, path: str, offset: int,
                        count: int) -> bytes:
    """``count`` bytes of ``path`` from ``offset`` (a seam fingerprint; small)."""
    script = f'tail -c +{offset + 1} "$1" 2>/dev/null | head -c {count}'
    _, out = await run_capture(docker, cid, ["sh", "-c", script, "read", path])
    return out


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
                    while len(buf) - pos >= _HEADER.size:
                        _, size = _HEADER.unpack_from(buf, pos)
                        if len(buf) - pos < _HEADER.size + size:
                            break
                        out += buf[pos + _HEADER.size:pos + _HEADER.size + size]
                        pos += _HEADER.size + size
                    del buf[:pos]
                if skip:
                    dropped = min(skip, len(out))
                    del out[:dropped]
                    skip -= dropped
                if out:
                    yield bytes(out)


async def file_size(docker: aiodocker.Docker, cid: str, path: str) -> int | None:
    """Size of ``path`` in the container (also a stopped one) without reading it."""
    import base64
    import json
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
