"""The copy loop on its own: exact bytes, whole lines per write, partial-line handling."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from loon_supervisor.logs import multiplexer
from loon_supervisor.logs.multiplexer import StreamCopy, copy_stream
from loon_supervisor.logs.terminal import Printer

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
