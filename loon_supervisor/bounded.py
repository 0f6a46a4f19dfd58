"""Read an operator's file without trusting it to end: a size limit, and a time limit for
pipes.

``/dev/zero`` as config.json used to grow the process without bound, and a FIFO nobody
writes to blocked until Ctrl+C. Regular files are read up to a limit; pipes and sockets
(``--config-file <(cat c.json)``, ``/dev/stdin``) until end of file as long as data keeps
coming; anything else (a device, a terminal) is refused. Directories raise
``IsADirectoryError`` as ``open`` would, so callers keep their own message for them.
"""

from __future__ import annotations

import errno
import os
import select
import stat
from pathlib import Path

from loon_supervisor.errors import LoonError

MiB = 1024 * 1024
PIPE_IDLE = 10.0
"""Seconds a pipe may stay silent before the read gives up (module-level for tests)."""


class UnboundedInput(LoonError):
    """A file too large, not a file, or a pipe that sends nothing: ``str()`` is a phrase to
    follow the file's name (``<path> is ...``)."""

    exit_code = 2


def _size(n: int) -> str:
    return f"{n / MiB:.1f} MiB" if n >= MiB else f"{n // 1024} KiB" if n >= 1024 else f"{n} B"


def read_bounded(path: Path | str, limit: int) -> bytes:
    """The file's bytes, at most ``limit`` of them.

    :raises UnboundedInput: larger than ``limit``, a device, or a silent pipe.
    :raises OSError: as ``open`` would (missing, a directory, no permission).
    """
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        if stat.S_ISREG(mode):
            size = os.fstat(fd).st_size
            if size > limit:
                raise UnboundedInput(f"is {_size(size)}, more than the {_size(limit)} such a "
                                     "file can need; check it is the right file")
            return _read_regular(fd, limit)
        if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
            return _read_pipe(fd, limit)
        kind = "a terminal" if os.isatty(fd) else "a device" if stat.S_ISCHR(mode) or \
            stat.S_ISBLK(mode) else "not a regular file"
        raise UnboundedInput(f"is {kind}, not a file; pass a file (or a pipe)")
    finally:
        os.close(fd)


def _too_large(limit: int) -> UnboundedInput:
    return UnboundedInput(f"holds more than the {_size(limit)} such a file can need; check "
                          "it is the right file")


def _read_regular(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while chunk := os.read(fd, min(MiB, limit + 1 - total) or 1):
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:  # it grew since fstat
            raise _too_large(limit)
    return b"".join(chunks)


def _read_pipe(fd: int, limit: int) -> bytes:
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLHUP)
    chunks: list[bytes] = []
    total = 0
    while True:
        if not poller.poll(PIPE_IDLE * 1000):
            raise UnboundedInput(f"sent no data for {PIPE_IDLE:.0f} s (a pipe nobody writes "
                                 "to?); pass a file, or start the writer first")
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            continue
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            raise _too_large(limit)
