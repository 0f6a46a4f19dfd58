"""``loon logs``: read a session's files back, with prefixes, optionally following.

Following polls the host files every 100 ms (hand-written: files on the host are local, a
size check is a cheap stat, and it avoids an inotify dependency for a read-only helper).
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import anyio

from loon_supervisor.errors import signal_exit_code
from loon_supervisor.paths import logs_dir
from loon_supervisor.sinks.session_pick import pick_session
from loon_supervisor.sinks.terminal import Printer

POLL = 0.1


def _tail_bytes(data: bytes, n: int | None) -> bytes:
    if n is None:
        return data
    if n <= 0:
        return b""
    lines = data.splitlines(keepends=True)
    return b"".join(lines[-n:])


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
        data = (session / f"{s}.log").read_bytes()
        offsets[s] = len(data)
        cut = data.rfind(b"\n") + 1
        if follow:  # a partial last line is printed once it is complete
            partial[s], data = data[cut:], data[:cut]
        shown = _tail_bytes(data, lines)
        if shown:
            printer.lines(s, shown)
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


def main(services: list[str], follow: bool, lines: int | None, session: Path | None,
         colour: bool | None, prefix: bool, timestamps: bool) -> int:
    from loon_supervisor.verbs.dispatch import run_sync

    return run_sync(show_logs, services, follow, lines, session, colour, prefix, timestamps)
