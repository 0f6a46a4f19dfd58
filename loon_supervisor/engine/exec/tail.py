"""A followed log file: an exec of ``tail -c +N -F`` (any image with a shell userland, on a
local or remote engine), its output told apart from tail's own rotation notices.

GNU tail follows with inotify on the log volume (no polling); busybox tail can only poll
once a second, which we accept as a fallback."""

from __future__ import annotations

import functools
import re
import shlex
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Literal

import aiodocker
import anyio

from loon_supervisor.engine.client import map_engine_errors
from loon_supervisor.engine.exec.commands import open_marked_exec, run_capture
from loon_supervisor.engine.exec.frames import COALESCE, take_over_frames
from loon_supervisor.errors import EngineError, LoonError

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
                 offset: int = 0, read_file: ReadFile | None = None,
                 coalesce: float | None = None) -> None:
        self._stream = stream
        self._frames = take_over_frames(stream, COALESCE if coalesce is None else coalesce)
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
                             follow: bool = True, inode: int | None = None,
                             coalesce: float | None = None) -> AsyncIterator[FollowedFile]:
    """Attach a ``tail`` carrying ``mark`` in its environment; on exit, stop it (closing
    the stream does not), whether or not the engine answered when the stream closed.
    ``coalesce`` overrides ``COALESCE`` (0: every frame handed on at once)."""
    async with open_marked_exec(docker, cid, follow_command(path, offset, gnu, follow, inode),
                                mark, "attaching to a log file", kill=follow) as stream:
        followed = FollowedFile(stream, path, on_notice, gnu or "tail", offset,
                                functools.partial(read_followed, docker, cid, path, inode),
                                coalesce)
        try:
            yield followed
        finally:
            followed.close()
