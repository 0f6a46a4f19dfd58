"""StreamCopy's back-pressure, engine-free: a reader that feeds faster than the file is
written waits once BUF_MAX bytes are buffered, so catching up holds bounded memory; every
byte still reaches the file, in order."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from loon_supervisor.sinks.files import FileSink
from loon_supervisor.streams import stream_copy
from loon_supervisor.streams.stream_copy import BUF_MAX, StreamCopy, open_copy

pytestmark = pytest.mark.anyio


async def test_a_fast_reader_waits_for_a_slow_writer(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = FileSink.write

    async def slow_write(self: FileSink, data: bytes) -> None:
        await anyio.sleep(0.005)  # a file slower than the stream
        await real_write(self, data)

    monkeypatch.setattr(FileSink, "write", slow_write)
    chunk = b"".join(b"%07d\n" % i for i in range(32 * 1024))  # 256 KiB of whole lines
    copy = StreamCopy("svc", tmp_path / "svc.log", None)
    most = waits = 0
    async with open_copy(copy):
        for _ in range(80):  # 20 MiB
            await anyio.lowlevel.checkpoint()  # as a reader awaiting its next chunk
            copy.feed(chunk)
            most = max(most, len(copy._buf))
            if copy.full:
                waits += 1
                await copy.room()
    assert waits > 0  # the reader was held back...
    assert most <= BUF_MAX + len(chunk)  # ...so the buffer never grew past the bound
    assert (tmp_path / "svc.log").read_bytes() == chunk * 80


async def test_a_failed_file_never_holds_the_reader(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    async def failing_write(self: FileSink, data: bytes) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(FileSink, "write", failing_write)
    copy = StreamCopy("svc", tmp_path / "svc.log", None)
    with anyio.fail_after(10):
        async with open_copy(copy):
            for _ in range(40):
                await anyio.lowlevel.checkpoint()
                copy.feed(b"x" * (stream_copy.WRITE_MAX - 1) + b"\n")
                if copy.full:
                    await copy.room()
    assert copy.failed is not None

