"""The terminal: compose-style ``service | line`` with a coloured, aligned prefix.

Only this module knows ANSI. Colour wraps the prefix only, and only on a TTY.

The terminal must never hold up the files: once :meth:`Printer.pump` runs, ``lines()`` only
appends to a bounded queue, and the pump writes it from a worker thread (a write to a paused
terminal blocks in the kernel; the event loop must not). When the queue is full, lines are
skipped and counted, and a notice says how many. A closed terminal (EPIPE: ``| head``) just
ends terminal output.
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import os
import re
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import TextIO

import anyio

_COLOURS = ["36", "33", "32", "35", "34", "91", "96", "93", "92", "95", "94"]
QUEUE_LINES = 10_000


def silence(out: TextIO) -> None:
    """After EPIPE/EIO: point ``out``'s descriptor at /dev/null so later writes (and the
    interpreter's flush at exit) do not fail again."""
    with contextlib.suppress(Exception):
        fd = out.fileno()
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, fd)
        os.close(null)


def is_gone(exc: OSError) -> bool:
    """The terminal or pipe went away (reader closed, ssh hung up)."""
    return isinstance(exc, BrokenPipeError) or exc.errno in (errno.EPIPE, errno.EIO,
                                                             errno.ENXIO)


_SINGLE_BREAKS = (b"\r", b"\x0b", b"\x0c", b"\x1c", b"\x1d", b"\x1e")
_MULTI_BREAKS = ((b"\xc2", b"\xc2\x85"), (b"\xe2", b"\xe2\x80\xa8"), (b"\xe2", b"\xe2\x80\xa9"))
"""Line boundaries of str.splitlines besides \\n, as UTF-8. Searched with ``in`` (memchr
for one byte; a multi-byte search is 50 times slower, so only after its first byte is
found, and never in ASCII)."""


def _other_breaks(data: bytes, ascii_only: bool) -> bool:
    if any(b in data for b in _SINGLE_BREAKS):
        return True
    return not ascii_only and any(lead in data and seq in data for lead, seq in _MULTI_BREAKS)


def prefixed_bytes(prefix: bytes, data: bytes) -> bytes:
    """``data``'s lines, each after ``prefix`` and ending in a newline, as UTF-8 (bad bytes
    replaced).

    Whole-buffer operations where the text breaks lines only at \\n (``loon logs -n all``
    on hundreds of MB); line by line only where other breaks occur.
    """
    ascii_only = data.isascii()
    if not ascii_only:
        data = data.decode("utf-8", errors="replace").encode("utf-8")
    if not data:
        return b""
    if _other_breaks(data, ascii_only):
        return "".join(f"{prefix.decode()}{line}\n" for line in
                       data.decode("utf-8").splitlines()).encode("utf-8")
    if not prefix:
        return data if data.endswith(b"\n") else data + b"\n"
    body = data[:-1] if data.endswith(b"\n") else data
    return prefix + body.replace(b"\n", b"\n" + prefix) + b"\n"


_BREAK = re.compile("\r\n|[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
"""Every line boundary of str.splitlines (\\r\\n as one)."""


class PrefixStream:
    """:func:`prefixed_bytes` of a whole file, computed block by block: feeding any split
    of ``data`` and then :meth:`close` writes exactly ``prefixed_bytes(prefix, data)``.

    Blocks need not end at a line end (``loon logs -n all`` passes the file's blocks as
    read: no carry, no slicing, one write per block). A block that is ASCII and breaks lines
    only at \\n costs one ``bytes.replace``; other blocks are decoded (an incremental
    decoder, so a character split between blocks decodes as in the whole file), their
    breaks turned into \\n (a \\r\\n split between blocks stays one break) and encoded.
    The prefix is written lazily, when a line's first byte arrives, so none is left after
    the last line.
    """

    def __init__(self, prefix: bytes, write: Callable[[bytes | memoryview], None]) -> None:
        self._prefix = prefix
        self._nl_prefix = b"\n" + prefix
        self._write = write
        self._owed = True  # at a line's start: its prefix is not written yet
        self._cr = False  # the last text ended with \r (a \n right after it is its pair)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._decoding = False  # the decoder may hold the start of a character

    def feed(self, block: bytes) -> None:
        if not block:
            return
        if self._decoding or self._cr or not block.isascii() or _other_breaks(block, True):
            self._feed_text(block)
        else:
            self._feed_plain(block)

    def close(self) -> None:
        """The end of the data: a last line without its newline gets one."""
        if self._decoding:
            self._feed_text(b"", final=True)
        if not self._owed:
            self._write(b"\n")
            self._owed = True

    def _feed_text(self, block: bytes, final: bool = False) -> None:
        text = self._decoder.decode(block, final)
        self._decoding = bool(self._decoder.getstate()[0])
        if self._cr and text:
            self._cr = False
            if text[0] == "\n":
                text = text[1:]
        if not text:
            return
        self._cr = text[-1] == "\r"
        self._feed_plain(_BREAK.sub("\n", text).encode("utf-8"))

    def _feed_plain(self, data: bytes) -> None:
        """``data`` breaks lines only at \\n."""
        out = data.replace(b"\n", self._nl_prefix) if self._prefix else data
        if self._owed and self._prefix:
            out = self._prefix + out
        self._owed = data[-1] == 10  # ends with \n: the next line's prefix is owed
        if self._owed and self._prefix:
            self._write(memoryview(out)[:len(out) - len(self._prefix)])
        else:
            self._write(out)


def prefixed(prefix: str, data: bytes) -> tuple[str, int]:
    """:func:`prefixed_bytes` as text, with the number of lines (the queued path)."""
    text = prefixed_bytes(prefix.encode("utf-8"), data).decode("utf-8")
    return text, text.count("\n")


class Printer:
    def __init__(self, names: list[str], out: TextIO | None = None,
                 colour: bool | None = None, show_prefix: bool = True,
                 timestamps: bool = False) -> None:
        self.out = out or sys.stdout
        self.show_prefix = show_prefix
        self.timestamps = timestamps
        self.colour = self.out.isatty() if colour is None else colour
        self.width = max((len(n) for n in names), default=0)
        self._colours = {n: _COLOURS[i % len(_COLOURS)] for i, n in enumerate(names)}
        self.broken = False
        self.skipped = 0
        self._queue: deque[str] = deque()
        self._queued_lines = 0
        self._pumping = False
        self._wake: anyio.Event | None = None

    def prefix(self, name: str) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S ") if self.timestamps else ""
        if not self.show_prefix:
            return stamp
        text = f"{stamp}{name.ljust(self.width)} | "
        if self.colour:
            return f"\x1b[{self._colours.get(name, '37')}m{text}\x1b[0m"
        return text

    def lines(self, name: str, data: bytes) -> None:
        """Print complete lines (bad bytes replaced); files keep the original bytes."""
        if self.broken:
            return
        if not self._pumping:
            self._write_bytes(prefixed_bytes(self.prefix(name).encode("utf-8"), data))
            return
        text, count = prefixed(self.prefix(name), data)
        if self._queued_lines + count > QUEUE_LINES:
            self.skipped += count
            return
        if self.skipped:
            self._queue.append(f"[terminal too slow: {self.skipped} lines skipped here; "
                               "the log files have them all]\n")
            self.skipped = 0
        self._queue.append(text)
        self._queued_lines += count
        if self._wake is not None:
            self._wake.set()

    def stream(self, name: str) -> PrefixStream:
        """A :class:`PrefixStream` for ``name`` writing straight to the output (only before
        :meth:`pump` runs: ``loon logs``' history)."""
        return PrefixStream(self.prefix(name).encode("utf-8"), self._write_bytes)

    def system(self, text: str) -> None:
        """A supervisor message; queued like lines while the pump runs."""
        if self.broken:
            return
        if not self._pumping:
            self._write(f"{text}\n")
            return
        self._queue.append(f"{text}\n")
        self._queued_lines += 1
        if self._wake is not None:
            self._wake.set()

    @property
    def pumping(self) -> bool:
        return self._pumping

    def _write_bytes(self, data: bytes | memoryview) -> None:
        """Straight to the binary buffer where there is one (no second encode of MBs)."""
        if self.broken:
            return
        buffer = getattr(self.out, "buffer", None)
        if buffer is None:
            self._write(bytes(data).decode("utf-8"))
            return
        try:
            self.out.flush()
            buffer.write(data)
            buffer.flush()
        except OSError as exc:
            if not is_gone(exc):
                raise
            self.broken = True
            silence(self.out)

    def _write(self, text: str) -> None:
        try:
            self.out.write(text)
            self.out.flush()
        except OSError as exc:
            if not is_gone(exc):
                raise
            self.broken = True
            silence(self.out)

    async def pump(self) -> None:
        """Write queued lines from a worker thread until cancelled; see the module doc."""
        self._pumping = True
        self._wake = anyio.Event()
        try:
            while not self.broken:
                await self._wake.wait()
                self._wake = anyio.Event()
                while self._queue and not self.broken:
                    text = "".join(self._queue)
                    self._queue.clear()
                    self._queued_lines = 0
                    await anyio.to_thread.run_sync(self._write, text, abandon_on_cancel=True)
        finally:
            self._pumping = False

    async def drain(self, limit: float = 1.0) -> None:
        """Give the pump ``limit`` seconds to empty the queue (at the end of a run)."""
        with anyio.move_on_after(limit):
            while self._queue and self._pumping and not self.broken:
                await anyio.sleep(0.02)

