"""``loon logs``: read a session's files back, with prefixes, optionally following.

Following polls the host files every 100 ms (hand-written: files on the host are local, a
size check is a cheap stat, and it avoids an inotify dependency for a read-only helper).

The history costs what it shows: ``-n N`` seeks back from the end block by block until it
has N lines (a busy deployment's session file reaches hundreds of MB), and the bytes shown
are copied in blocks of :data:`BLOCK`, never read whole (BENCHMARKS.md, "loon logs").
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import anyio

from loon_supervisor.errors import signal_exit_code
from loon_supervisor.paths import logs_dir
from loon_supervisor.sinks.session_pick import pick_session
from loon_supervisor.sinks.terminal import Printer

POLL = 0.1
BLOCK = 128 * 1024
"""Bytes read at a time, backwards (``-n N``) and forwards (the copy). Below glibc's mmap
threshold, so the buffers are reused instead of mapped and faulted in anew per block (with
1 MiB blocks, -n all spent as much CPU in the kernel as in Python)."""


def last_lines_start(fd: int, end: int, n: int | None) -> int:
    """The offset where the last ``n`` lines of the file's first ``end`` bytes begin (a
    final line without its newline counts as one); ``n`` None: all, 0: none."""
    if n is None:
        return 0
    if n <= 0 or end <= 0:
        return end
    # The newline that ends the last line does not start one: search before it.
    limit = end - 1 if os.pread(fd, 1, end - 1) == b"\n" else end
    found = 0
    pos = limit
    while pos > 0:
        start = max(0, pos - BLOCK)
        block = os.pread(fd, pos - start, start)
        at = len(block)
        while True:
            at = block.rfind(b"\n", 0, at)
            if at < 0:
                break
            found += 1
            if found == n:
                return start + at + 1
        pos = start
    return 0


def copy_blocks(fd: int, start: int, end: int, emit: Callable[[bytes], object],
                stop: Callable[[], bool] = lambda: False) -> None:
    """Pass bytes ``start``..``end`` to ``emit`` in blocks as read (a line may span two:
    :class:`~loon_supervisor.sinks.terminal.PrefixStream` needs no line ends, so nothing
    is carried, sliced or held). ``stop``: the reader went away (``| head``)."""
    pos = start
    while pos < end and not stop():
        block = os.pread(fd, min(BLOCK, end - pos), pos)
        if not block:
            break  # the file shrank under us
        pos += len(block)
        emit(block)


def _after_last_newline(fd: int, size: int) -> int:
    pos = size
    while pos > 0:
        start = max(0, pos - BLOCK)
        at = os.pread(fd, pos - start, start).rfind(b"\n")
        if at >= 0:
            return start + at + 1
        pos = start
    return 0


def _show_history(path: Path, follow: bool, lines: int | None, emit: Callable[[bytes], object],
                  stop: Callable[[], bool] = lambda: False) -> tuple[int, bytes]:
    """Pass the wanted history of one file to ``emit``; (offset to follow from, held
    partial line)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        size = os.fstat(fd).st_size
        # With -f a partial last line is printed once it is complete.
        end = _after_last_newline(fd, size) if follow else size
        copy_blocks(fd, last_lines_start(fd, end, lines), end, emit, stop)
        return size, os.pread(fd, size - end, end) if size > end else b""
    finally:
        os.close(fd)


async def show_logs(services: list[str], follow: bool, lines: int | None,
                    current: Path | None = None, colour: bool | None = None,
                    prefix: bool = True, timestamps: bool = False) -> int:
    """Print a session's files; ``lines`` None: all. ``timestamps`` stamps each followed
    line with the time it reached the file (the files themselves hold no per-line times)."""
    pick = pick_session(logs_dir(), current)
    if pick is None:
        print(f"no log sessions in {logs_dir()} yet")
        return 1
    session = pick.session
    if pick.note:
        print(f"note: {pick.note}", file=sys.stderr)
    available = sorted(p.stem for p in session.glob("*.log"))
    chosen = services or (["out"] if pick.only_out_log else
                          [s for s in available if s != "out"])
    missing = [s for s in chosen if s not in available]
    if missing:
        print(f"no log file for {', '.join(missing)} in {session}; there are: "
              f"{', '.join(available)}")
        return 2
    printer = Printer(chosen, colour=colour, show_prefix=prefix)
    offsets: dict[str, int] = {}
    partial: dict[str, bytes] = {s: b"" for s in chosen}
    for s in chosen:
        stream = printer.stream(s)
        offsets[s], partial[s] = _show_history(session / f"{s}.log", follow, lines,
                                               stream.feed, lambda: printer.broken)
        stream.close()
    printer.timestamps = timestamps  # only followed lines have a known arrival time
    if not follow:
        return 0
    stopped: list[int] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(_stop_on_signal, tg.cancel_scope, stopped)
        while True:
            await anyio.sleep(POLL)
            for s in chosen:
                path = session / f"{s}.log"
                size = path.stat().st_size
                if size <= offsets[s]:
                    continue
                with open(path, "rb") as fh:
                    fh.seek(offsets[s])
                    chunk = partial[s] + fh.read(size - offsets[s])
                offsets[s] = size
                cut = chunk.rfind(b"\n") + 1
                partial[s] = chunk[cut:]
                if cut:
                    printer.lines(s, chunk[:cut])
    return signal_exit_code(stopped[0])


async def _stop_on_signal(scope: anyio.CancelScope, stopped: list[int]) -> None:
    """Ctrl+C (or SIGTERM) ends ``-f`` with 130 (143) by our own handler, not by asyncio's
    default one, whose timing under load left the process running."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            stopped.append(int(signum))
            scope.cancel()
            return


@dataclass(frozen=True)
class LogsOptions:
    """``loon logs``: which services, how much history, following or not, and how lines look."""

    services: list[str]
    follow: bool
    lines: int | None
    session: Path | None
    colour: bool | None
    prefix: bool
    timestamps: bool


async def run(opts: LogsOptions) -> int:
    return await show_logs(opts.services, opts.follow, opts.lines, opts.session, opts.colour,
                           opts.prefix, opts.timestamps)
