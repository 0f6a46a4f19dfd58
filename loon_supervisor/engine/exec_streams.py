"""Byte streams out of a running container: followed log files, command output, archives.

A followed file is an exec of ``tail -c +N -F`` so that any image with a shell userland can
be followed, locally or on a remote engine. GNU tail follows with inotify on the log volume
(no polling); busybox tail can only poll once a second, which we accept as a fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import math
import os
import re
import shlex
import struct
import tarfile
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Literal

import aiodocker
import anyio

from loon_supervisor.engine import raw as rawapi
from loon_supervisor.engine.client import map_engine_errors
from loon_supervisor.errors import EngineError, LoonError

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


# The first line of every follower's stdout, written by its shell before tail starts: when
# the engine fails to start an exec after the attach (containerd not ready after an engine
# restart) it writes its error text into the exec's stdout, which would otherwise be taken
# for the file's bytes ("transport is closing: unavailable" once began a host file).
STARTED = b"loon-follower-started\n"


def follow_command(path: str, offset: int, gnu: str | None, follow: bool = True,
                   inode: int | None = None) -> list[str]:
    """``tail`` from byte ``offset`` (0-based), following renames and re-creation.

    tail's stderr is merged into its stdout inside the container: tail (GNU's error(),
    busybox's direct writes) writes its notices after the data before them, so a rotation
    notice sits exactly at the seam between the old and the new file in one ordered stream
    (the engine's separate stdout and stderr frames do not keep that order). A service line
    that only reads like a notice is told apart by the file itself (:class:`FollowedFile`).

    With ``inode`` (the file the offset belongs to, from the follower's last stat) the shell
    checks the path still names it right before tail opens it, and otherwise says on stderr
    that it was replaced (the follower resyncs) instead of applying the offset to another
    file. That narrows the stat-to-open window from an exec round trip to an ``execve``;
    tail opens by name, so it cannot be closed entirely here (the host directory source
    checks the opened descriptor itself).
    """
    args = [gnu or "tail", "-c", f"+{offset + 1}"]
    if follow:
        args += ["-F", "-s", "0.05"] if gnu else ["-F"]
    run = f"echo {STARTED.decode().strip()}; exec {shlex.join(args)} {shlex.quote(path)} 2>&1"
    if inode is None:
        return ["sh", "-c", run]
    check = (f'i=$(stat -L -c %i {shlex.quote(path)} 2>/dev/null); '
             f'if [ -n "$i" ] && [ "$i" != "{int(inode)}" ]; then '
             f'echo "loon: {shlex.quote(path)} was replaced before tail opened it" >&2; '
             'exit 0; fi; ')
    return ["sh", "-c", check + run]


Event = Literal["replaced", "truncated"]

# How long a follower lets frames pile up in the socket after it handed a batch on: each line
# of a slow service arrives in its own exec frame, and every frame read costs a loop
# iteration (epoll, recv, parse) and every hand-over a task wake-up, a notice check and a
# write. After a batch the socket is left unread until the next multiple of COALESCE on the
# loop's clock: all busy followers are then read in the same loop iteration, each with one
# recv, and a line waits at most COALESCE. A quiet stream's first bytes are handed on at once. The trade
# (delay vs CPU vs p99) is measured by the bench's sweep and written in BENCHMARKS.md.
# LOON_COALESCE_MS overrides it (the sweep uses it; 0 turns coalescing off).
COALESCE = float(os.environ.get("LOON_COALESCE_MS", "15")) / 1000
READ_LIMIT = 256 * 1024  # stop reading the socket while this much is parsed, not taken
BULK = 64 * 1024  # a batch this big means bulk transfer: no pause, read on at once
TICK_GRACE = 0.001  # after a tick: time for the bytes waiting in the socket to be read
IDLE_TICKS = 4  # empty ticks in a row after which a stream counts as quiet


class FrameReader:
    """The engine's multiplexed exec frames (8-byte header: stream, size), parsed by hand as
    the socket delivers them.

    Stands in for aiodocker's parser and queue, which build one Message, one queue entry and
    one task wake-up per frame: here every frame's stdout payload is appended to one buffer
    and :meth:`take` hands all of it over at once. After a hand-over smaller than ``BULK``
    the socket is paused until the next ``delay`` tick (see ``COALESCE``); flow control
    also pauses it while
    ``READ_LIMIT`` bytes wait. It is both the parser and the payload that aiohttp's protocol
    feeds (``feed_data``, ``feed_eof``, ``set_exception``, ``is_eof``).
    """

    def __init__(self, transport: Any, delay: float = 0.0) -> None:
        self._transport = transport  # anything with pause_reading() / resume_reading()
        self._loop = asyncio.get_running_loop()
        self._delay = delay
        self._raw = bytearray()
        self._out = bytearray()
        # stderr frames (the exec's own messages), each with the number of stdout bytes
        # parsed before it: where in the data the engine placed it
        self.notices: list[tuple[int, bytes]] = []
        self.parsed = 0  # stdout payload bytes parsed so far
        self._eof = False
        self._exc: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._holding = False  # paused until the next tick
        self._full = False  # paused by flow control
        self._closed = False
        self._got = False  # bytes came since the last tick
        self._empty_ticks = 0

    # -- the protocol's side (called by aiohttp from data_received / connection_lost)
    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        raw = self._raw
        raw += data
        pos, n = 0, len(raw)
        with memoryview(raw) as view:  # payloads copied once, straight into _out
            while n - pos >= 8:
                kind, size = _HEADER.unpack_from(raw, pos)
                end = pos + 8 + size
                if end > n:
                    break
                if kind == 2:
                    self.notices.append((self.parsed, bytes(view[pos + 8:end])))
                else:
                    self._out += view[pos + 8:end]
                    self.parsed += size
                pos = end
        if pos:
            del raw[:pos]
            self._got = True
            if len(self._out) >= READ_LIMIT and not self._full:
                self._full = True
                self._reading(False)
            self._wake()
        return False, b""

    def feed_eof(self) -> None:
        self._eof = True
        self._wake()

    def is_eof(self) -> bool:
        return self._eof

    def set_exception(self, exc: BaseException, exc_cause: BaseException | None = None
                      ) -> None:
        self._exc = exc
        self._wake()

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _reading(self, on: bool) -> None:
        """Pause or resume the socket; it reads only when neither the tick nor flow control
        holds it."""
        if self._closed:
            return
        if on and not (self._holding or self._full):
            self._transport.resume_reading()
        elif not on:
            self._transport.pause_reading()

    def _hold(self) -> None:
        """Leave the socket unread until the next tick."""
        if self._timer is not None:
            self._timer.cancel()
        d = self._delay
        self._holding = True
        self._reading(False)
        self._timer = self._loop.call_at(math.ceil(self._loop.time() / d) * d, self._tick)

    def _tick(self) -> None:
        """Read what came meanwhile; if nothing did, go on holding to the next tick (a busy
        stream stays on the shared ticks), unless ``IDLE_TICKS`` ticks in a row were empty:
        then read on and hand the next bytes over at once (a quiet stream costs nothing)."""
        self._holding = False
        self._got = False
        self._reading(True)
        self._timer = self._loop.call_later(TICK_GRACE, self._after_tick)

    def _after_tick(self) -> None:
        self._timer = None
        if self._got or self._out or self._eof or self._exc is not None or self._closed:
            return
        self._empty_ticks += 1
        if self._empty_ticks < IDLE_TICKS:
            self._hold()

    # -- the reader's side
    async def wait(self) -> None:
        """Until there are bytes, notices, the end or an error."""
        if self._out or self.notices or self._eof or self._exc is not None:
            return
        self._waiter = self._loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def take(self) -> bytes | None:
        """Every stdout byte parsed so far (b"" if none); None at the end."""
        if not self._out:
            return None if self._eof or self._exc is not None else b""
        out = bytes(self._out)
        self._out.clear()
        if self._full:
            self._full = False
            self._reading(True)
        if (self._delay and len(out) < BULK and not self._holding and not self._eof
                and self._exc is None):
            self._empty_ticks = 0
            self._hold()
        return out

    def close(self) -> None:
        """No more reads: drop the tick (the stream itself is closed by its owner)."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    @property
    def error(self) -> BaseException | None:
        """What broke the stream (raised by the reader once the bytes before it are taken)."""
        return self._exc


def take_over_frames(stream: aiodocker.stream.Stream, delay: float = 0.0) -> FrameReader:
    """Put a :class:`FrameReader` in place of aiodocker's parser on an attached exec stream
    (through engine/raw.py, the one place that touches aiodocker's private side)."""
    # Pause and resume go straight to asyncio's transport (public asyncio API): aiohttp's
    # protocol wrappers around them cost as much again, twice per tick and follower.
    reader = FrameReader(rawapi.exec_protocol(stream).transport, delay)
    rawapi.replace_exec_parser(stream, reader)
    return reader


ReadFile = Callable[[int, int], Awaitable[bytes]]


class FollowedFile:
    """An attached ``tail``: ``receive()`` gives stdout bytes, None at end of stream; after a
    rotation notice it ends early and ``event`` says which (see :func:`split_notice`).

    tail's stderr is merged into its stdout inside the container, so a notice sits exactly
    at the seam between the old and the new file: the engine copies an exec's stdout and
    stderr with separate goroutines, and with two streams a notice can arrive before old
    bytes written ahead of it or after new bytes written behind it (seen under load: the
    first new line doubled after a truncation). A line that reads like a notice is
    therefore checked against the file before it is taken for one: ``read_file(offset,
    count)`` gives the followed file's bytes there; if they are the line, a service wrote it
    and it is data (copied and counted), otherwise it is tail's. Messages
    on the exec's own stderr (the shell's, before tail runs) are notices as they are.
    """

    def __init__(self, stream: aiodocker.stream.Stream, path: str,
                 on_notice: Callable[[str], None], program: str = "tail",
                 offset: int = 0, read_file: ReadFile | None = None) -> None:
        self._stream = stream
        self._frames = take_over_frames(stream, COALESCE)
        self._path = path
        self._program = program
        self._head = program.encode() + b": "
        self._on_notice = on_notice
        self._held = b""
        self._next = offset  # the file offset of the next byte handed on
        self._read_file = read_file
        self._started = False  # STARTED seen (see follow_command)
        self._first: bytes | None = None  # what came with STARTED, not yet handed on
        self.event: Event | None = None

    def close(self) -> None:
        self._frames.close()

    async def _read(self) -> bytes | None:
        """The next batch of stdout bytes (see :class:`FrameReader`); None at the end."""
        frames = self._frames
        while True:
            await frames.wait()
            if frames.notices:
                for _, text in frames.notices:
                    line = text.decode(errors="replace").strip()
                    if line:
                        self._on_notice(line)
                    ev = classify(text)
                    if ev is not None and self.event is None:
                        self.event = ev
                frames.notices.clear()
            data = frames.take()
            if data is None and frames.error is not None:
                with map_engine_errors("reading a log stream"):
                    raise frames.error
            if data != b"" or self.event is not None:
                return data

    async def _split(self, data: bytes) -> tuple[bytes, Event | None]:
        """The data before the first real rotation notice in ``data`` (notice-looking lines
        that are the file's own bytes stay in), and that notice's event. The file's bytes
        under every candidate are fetched with one read per batch, not one per line."""
        out = b""
        file: bytes | None = None  # the followed file's bytes from _next on, if fetched
        while self._head in data:
            before, notice, after = split_notice(data, self._path, self._program)
            if notice is None:
                break
            at = len(out) + len(before)  # relative to _next
            if file is None:
                file = await self._file_bytes(at, len(out) + len(data))
            if file[at:at + len(notice)] == notice:  # a service wrote it: data
                out += before + notice
                data = after
                continue
            self._on_notice(notice.decode(errors="replace").strip())
            ev = classify(notice)
            if ev is not None:
                return out + before, ev
            out += before
            data = after
            file = None  # offsets after a removed notice no longer line up; fetch again
        return out + data, None

    async def _file_bytes(self, at: int, end: int) -> bytes:
        """The followed file's bytes ``[_next + at, _next + end)``, padded in front so that
        index ``at`` is the byte at ``_next + at``; b"" when they cannot be read."""
        if self._read_file is None:
            return b""
        try:
            got = await self._read_file(self._next + at, end - at)
        except LoonError:
            return b""  # the engine did not say: tail's, as without the check
        return b"\0" * at + got

    async def _start(self) -> None:
        """Take the shell's STARTED line; anything else first is the engine's own message
        (an exec that did not start), never file data."""
        got = b""
        while len(got) < len(STARTED) and STARTED.startswith(got):
            data = await self._read()
            if data is None or self.event is not None:
                break
            got += data
        self._started = True
        if self.event is not None and not got:  # the shell's own notice: it never ran tail
            return
        if not got.startswith(STARTED):
            text = got.decode(errors="replace").strip()[:200]
            raise EngineError(f"the log follower did not start: {text or 'no output'}")
        self._first = got[len(STARTED):] or None

    async def receive(self) -> bytes | None:
        if not self._started:
            await self._start()
        while True:
            if self.event is not None:
                return None
            if self._held:
                data = None
                with anyio.move_on_after(HOLD_GRACE) as scope:
                    data = await self._read()
                if scope.cancelled_caught:  # nothing more came: the held bytes were data
                    out, self._held = self._held, b""
                    self._next += len(out)
                    return out
            elif self._first is not None:
                data, self._first = self._first, None
            else:
                data = await self._read()
            if data is None:
                out, self._held = self._held, b""
                self._next += len(out)
                return out or None
            if self._held:
                data = self._held + data
                self._held = b""
            out, ev = await self._split(data) if self._head in data else (data, None)
            if ev is not None:
                self.event = ev
                self._next += len(out)
                return out or None
            if not out.endswith(b"\n"):  # a notice's start may be cut off at the end
                out, self._held = hold_back(out, self._program)
            if out:
                self._next += len(out)
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
    """The rotation a notice line reports, if any."""
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
    if data.endswith(b"\n"):  # no prefix of the head ends in a newline
        return data, b""
    for k in range(min(len(head) - 1, len(data)), 0, -1):
        if head.startswith(data[-k:]):
            return data[:-k], data[-k:]
    return data, b""


@functools.lru_cache(maxsize=64)
def _notice_re(path: str, program: str) -> re.Pattern[bytes]:
    p, head = re.escape(path.encode()), re.escape(program.encode() + b": ")
    return re.compile(head + rb"(?:[^\n]{0,40}?)'?" + p + rb"'?[: ][^\n]*\n|" +
                      head + rb"inotify[^\n]*\n")


async def read_followed(docker: aiodocker.Docker, cid: str, path: str, inode: int | None,
                        offset: int, count: int) -> bytes:
    """``count`` bytes at ``offset`` of the followed file: ``inode`` if known (at ``path``
    or, just rotated, ``path.1``), else ``path``; b"" when it is not found."""
    script = ('for f in "$1" "$1.1"; do i=$(stat -L -c %i "$f" 2>/dev/null) || continue; '
              'if [ -z "$2" ] || [ "$i" = "$2" ]; then '
              'tail -c +"$3" "$f" 2>/dev/null | head -c "$4"; exit 0; fi; done; exit 1')
    code, out = await run_capture(docker, cid, ["sh", "-c", script, "read", path,
                                                str(inode or ""), str(offset + 1), str(count)],
                                  limit=count + 1)
    return out if code == 0 else b""


@asynccontextmanager
async def open_followed_file(docker: aiodocker.Docker, cid: str, path: str, offset: int,
                             gnu: str | None, mark: str, on_notice: Callable[[str], None],
                             follow: bool = True, inode: int | None = None
                             ) -> AsyncIterator[FollowedFile]:
    """Attach a ``tail`` carrying ``mark`` in its environment; on exit, stop it (closing
    the stream does not), whether or not the engine answered when the stream closed."""
    container = docker.containers.container(cid)
    with map_engine_errors("attaching to a log file"):
        ex = await container.exec(follow_command(path, offset, gnu, follow, inode), stdout=True,
                                  stderr=True, environment={FOLLOWER_ENV: mark})
        stream = ex.start(detach=False)
        await stream.__aenter__()
    followed: FollowedFile | None = None
    try:
        followed = FollowedFile(
            stream, path, on_notice, gnu or "tail", offset,
            functools.partial(read_followed, docker, cid, path, inode))
        yield followed
    finally:
        if followed is not None:
            followed.close()
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
    """(inode, size) of each of ``paths`` that exists in the running container, as one
    snapshot: the sizes are taken between two passes that name the same inodes (a rotation
    renaming the generations meanwhile could show a file under neither name), up to 5
    tries, all in the one exec."""
    script = ('n() { stat -c "%i %n" "$@" 2>/dev/null; }; a=$(n "$@"); k=0; '
              'while :; do s=$(stat -c "%i %s %n" "$@" 2>/dev/null); b=$(n "$@"); '
              'k=$((k+1)); if [ "$a" = "$b" ] || [ $k -ge 5 ]; then break; fi; a=$b; done; '
              'printf "%s\\n" "$s"')
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
    container = docker.containers.container(cid)
    with map_engine_errors("watching the services' states"):
        ex = await container.exec(status_loop_command(command, interval), stdout=True,
                                  stderr=True, environment={FOLLOWER_ENV: mark})
        stream = ex.start(detach=False)
        await stream.__aenter__()
    snapshots: StatusStream | None = None
    try:
        snapshots = StatusStream(take_over_frames(stream))
        yield snapshots
    finally:
        if snapshots is not None:
            snapshots.close()
        with anyio.CancelScope(shield=True), anyio.move_on_after(5):
            await stream.close()
            with contextlib.suppress(Exception):
                await kill_marked(docker, cid, mark, exact=True)


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


async def run_feeding(docker: aiodocker.Docker, cid: str, cmd: list[str],
                      chunks: AsyncIterator[bytes], env: dict[str, str] | None = None,
                      limit: int = 1 << 16) -> tuple[int, bytes]:
    """Run ``cmd`` with ``chunks`` as its stdin (then end of file); (exit code, the last
    ``limit`` bytes of stdout+stderr). A database restore streams its dump this way, so a
    dump of any size never sits in memory whole, and ``env`` carries the password."""
    with map_engine_errors(f"running {cmd[0]} in the container"):
        ex = await docker.containers.container(cid).exec(
            cmd, stdin=True, stdout=True, stderr=True,
            environment=[f"{k}={v}" for k, v in (env or {}).items()] or None)
        out = bytearray()
        async with ex.start(detach=False) as stream, anyio.create_task_group() as tg:
            async def read() -> None:
                while (msg := await stream.read_out()) is not None:
                    out.extend(msg.data)
                    del out[:-limit]

            tg.start_soon(read)
            async for chunk in chunks:
                await stream.write_in(chunk)
            _half_close(stream)
        info = await ex.inspect()
    return int(info.get("ExitCode") or 0), bytes(out)


def _half_close(stream: Any) -> None:
    """End the command's stdin and keep reading its output: aiodocker's Stream.close()
    closes both directions, so the write side of the hijacked connection is ended here."""
    transport = stream._resp.connection.transport
    if transport is not None and transport.can_write_eof():
        transport.write_eof()
