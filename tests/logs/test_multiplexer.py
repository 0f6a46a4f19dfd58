"""The copy loop on its own: exact bytes, whole lines per write, partial-line handling."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import pytest

from loon_supervisor.sinks.terminal import Printer
from loon_supervisor.streams import stream_copy as multiplexer
from loon_supervisor.streams.stream_copy import StreamCopy, open_copy


async def copy_stream(copy: StreamCopy, receive: Callable[[], Awaitable[bytes | None]]) -> None:
    """Pump ``receive`` into ``copy`` until end of stream, then finish writing."""
    async with open_copy(copy):
        while (data := await receive()) is not None:
            copy.feed(data)

pytestmark = pytest.mark.anyio


def scripted(chunks: list[bytes | float]):  # type: ignore[no-untyped-def]
    items = list(chunks)

    async def receive() -> bytes | None:
        while items:
            item = items.pop(0)
            if isinstance(item, float):
                await anyio.sleep(item)
                continue
            return item
        return None
    return receive


async def test_bytes_survive_exactly(tmp_path: Path) -> None:
    data = [b"a\nb", b"c\n", b"\xff\xfe bad\n", b"x" * 100_000 + b"\n", b"no newline"]
    copy = StreamCopy("s", tmp_path / "s.log", None)
    await copy_stream(copy, scripted(data))
    assert (tmp_path / "s.log").read_bytes() == b"".join(data)
    assert copy.written == len(b"".join(data))


async def test_only_whole_lines_are_written_while_more_comes(tmp_path: Path) -> None:
    writes: list[bytes] = []
    copy = StreamCopy("s", tmp_path / "s.log", lambda name, chunk: writes.append(chunk))
    await copy_stream(copy, scripted([b"one\ntw", 0.01, b"o\nthr", 0.01, b"ee\n"]))
    assert writes == [b"one\n", b"two\n", b"three\n"]


async def test_partial_line_flushed_after_silence(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(multiplexer, "PARTIAL_DELAY", 0.05)
    copy = StreamCopy("s", tmp_path / "s.log", None)
    seen = []

    async def probe() -> None:
        await anyio.sleep(0.3)
        seen.append((tmp_path / "s.log").read_bytes())

    async with anyio.create_task_group() as tg:
        tg.start_soon(probe)
        await copy_stream(copy, scripted([b"prompt> ", 0.5]))
    assert seen == [b"prompt> "]


async def test_appends_to_existing_file_and_counts_from_its_size(tmp_path: Path) -> None:
    (tmp_path / "s.log").write_bytes(b"old\n")
    copy = StreamCopy("s", tmp_path / "s.log", None)
    assert copy.written == 4
    await copy_stream(copy, scripted([b"new\n"]))
    assert (tmp_path / "s.log").read_bytes() == b"old\nnew\n"


def test_printer_prefixes_aligned_and_plain_off_tty(capsys: pytest.CaptureFixture[str]) -> None:
    import io
    out = io.StringIO()
    p = Printer(["db", "server"], out=out, colour=False)
    p.lines("db", b"hello\nworld\n")
    p.lines("server", b"\xffx\n")
    assert out.getvalue() == "db     | hello\ndb     | world\nserver | \ufffdx\n"
    coloured = Printer(["db"], out=io.StringIO(), colour=True)
    assert coloured.prefix("db").startswith("\x1b[36m")


async def test_partial_line_flushed_by_size_while_data_keeps_coming(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(multiplexer, "PARTIAL_MAX", 1000)
    monkeypatch.setattr(multiplexer, "PARTIAL_DELAY", 60.0)
    writes: list[bytes] = []
    copy = StreamCopy("s", tmp_path / "s.log", lambda name, chunk: writes.append(chunk))
    chunks: list[bytes | float] = []
    for _ in range(30):
        chunks += [b"." * 100, 0.005]
    await copy_stream(copy, scripted(chunks))
    assert (tmp_path / "s.log").read_bytes() == b"." * 3000
    assert len(writes) >= 2 and all(len(w) >= 1000 for w in writes[:-1])


async def test_partial_line_flushed_by_age_while_data_keeps_coming(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(multiplexer, "PARTIAL_DELAY", 0.1)
    writes: list[bytes] = []
    copy = StreamCopy("s", tmp_path / "s.log", lambda name, chunk: writes.append(chunk))
    chunks: list[bytes | float] = []
    for _ in range(20):
        chunks += [b".", 0.03]  # a dot every 30 ms: never 100 ms of silence
    await copy_stream(copy, scripted(chunks + [b"\n"]))
    assert (tmp_path / "s.log").read_bytes() == b"." * 20 + b"\n"
    assert len(writes) >= 3  # dots reached the file before the newline


async def test_a_failing_file_is_reported_once_and_the_stream_goes_on(tmp_path: Path) -> None:
    faults: list[str] = []
    copy = StreamCopy("s", tmp_path / "s.log", None, faults.append)

    async def full(data: bytes) -> None:
        raise OSError(28, "No space left on device")

    async with multiplexer.FileSink(copy.path) as sink:
        sink.write = full  # type: ignore[method-assign]
        async with anyio.create_task_group() as tg:
            tg.start_soon(copy.write_loop, sink)
            for i in range(5):
                copy.feed(f"line {i}\n".encode())
                await anyio.sleep(0.01)
            copy.feed_eof()
    assert len(faults) == 1 and "No space left on device" in faults[0] and "s.log" in faults[0]
    # every byte was taken from the stream, none reached the file: a position saved from
    # ``written`` makes a later reader take them up again (streams/cursor.py)
    assert (copy.written, copy.received) == (0, 35)
    assert (tmp_path / "s.log").read_bytes() == b""


def test_a_full_terminal_queue_skips_lines_and_says_how_many(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from loon_supervisor.sinks import terminal
    monkeypatch.setattr(terminal, "QUEUE_LINES", 3)
    p = Printer(["a"], out=io.StringIO(), colour=False)
    p._pumping = True  # as while pump() runs: lines() only queues
    p.lines("a", b"1\n2\n3\n")
    p.lines("a", b"4\n5\n")  # queue full: skipped
    assert p.skipped == 2
    p._queue.clear()
    p._queued_lines = 0
    p.lines("a", b"6\n")
    assert "".join(p._queue) == ("[terminal too slow: 2 lines skipped here; the log files "
                                 "have them all]\na | 6\n")


def test_a_closed_pipe_ends_terminal_output_quietly() -> None:
    import io

    class Closed(io.StringIO):
        def write(self, s: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    p = Printer(["a"], out=Closed(), colour=False)
    p.lines("a", b"x\n")
    assert p.broken
    p.lines("a", b"y\n")  # no error
