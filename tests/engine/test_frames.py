"""The hand-written exec frame parser and the status snapshots cut from one long stream."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import anyio
import pytest

from loon_supervisor.engine.exec.frames import IDLE_TICKS, FrameReader
from loon_supervisor.engine.exec.status import STATUS_END, StatusStream

pytestmark = pytest.mark.anyio


class Protocol:
    def __init__(self) -> None:
        self.paused = False

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False


def frame(kind: int, data: bytes) -> bytes:
    return struct.pack(">BxxxL", kind, len(data)) + data


async def test_frames_split_anywhere_join_into_one_batch() -> None:
    reader = FrameReader(Protocol())
    wire = frame(1, b"a\n") + frame(2, b"exec note") + frame(1, b"b\nc") + frame(1, b"\n")
    for i in range(len(wire)):  # one byte at a time: headers and payloads cut everywhere
        reader.feed_data(wire[i:i + 1])
    await reader.wait()
    assert reader.take() == b"a\nb\nc\n"
    assert reader.notices == [(2, b"exec note")]
    assert reader.take() == b""
    reader.feed_eof()
    await reader.wait()
    assert reader.take() is None


async def test_pause_after_a_small_batch_until_a_quiet_stream_reads_on() -> None:
    proto = Protocol()
    reader = FrameReader(proto, delay=0.01)
    reader.feed_data(frame(1, b"x\n"))
    assert reader.take() == b"x\n" and proto.paused  # held to the next tick
    await anyio.sleep(0.01 * (IDLE_TICKS + 3))
    assert not proto.paused  # empty ticks in a row: quiet, read on
    reader.feed_data(frame(1, b"y\n"))  # and hand the next bytes over at once
    await reader.wait()
    assert reader.take() == b"y\n" and proto.paused
    reader.close()


async def test_bulk_batches_do_not_pause_but_flow_control_does() -> None:
    proto = Protocol()
    reader = FrameReader(proto, delay=0.01)
    reader.feed_data(frame(1, b"y" * 100_000))
    assert reader.take() is not None and not proto.paused
    for _ in range(20):
        reader.feed_data(frame(1, b"z" * 60_000))
    assert proto.paused  # more than READ_LIMIT waiting
    assert len(reader.take() or b"") == 1_200_000 and not proto.paused
    reader.close()


async def test_an_error_comes_after_the_bytes_before_it() -> None:
    reader = FrameReader(Protocol())
    reader.feed_data(frame(1, b"last\n"))
    reader.set_exception(ConnectionResetError("gone"))
    assert reader.take() == b"last\n"
    assert reader.take() is None and isinstance(reader.error, ConnectionResetError)


async def test_status_snapshots_are_cut_at_the_end_marker() -> None:
    reader = FrameReader(Protocol())
    status = StatusStream(reader)
    end = f"{STATUS_END}\n".encode()
    reader.feed_data(frame(1, b"db RUNNING pid 1\nweb STARTING\n" + end + b"db RUN"))
    assert await status.next() == b"db RUNNING pid 1\nweb STARTING"
    reader.feed_data(frame(1, b"NING pid 2\n" + end + end))
    assert await status.next() == b"db RUNNING pid 2"
    assert await status.next() == b""  # a run that printed nothing
    reader.feed_eof()
    assert await status.next() is None


async def test_the_swap_keeps_aiodocker_s_half_parsed_frame() -> None:
    """Bytes that reached aiodocker's parser right after the upgrade, cut inside a frame
    header, are parsed on by ours from that byte (not read as a new header)."""
    from types import SimpleNamespace

    from aiodocker._flow_control_queue import FlowControlDataQueue
    from aiodocker.stream import _ExecParser
    from aiohttp.client_proto import ResponseHandler

    from loon_supervisor.engine.exec.frames import take_over_frames

    wire = frame(1, b"one\n") + frame(2, b"note") + frame(1, b"two\n" * 100) + frame(1, b"3\n")
    first = len(frame(1, b"one\n"))
    for cut in (first + 3, first + len(frame(2, b"note")) + 20):  # in a header, in a payload
        protocol = ResponseHandler(asyncio.get_running_loop())
        queue: FlowControlDataQueue[Any] = FlowControlDataQueue(protocol, limit=2 ** 16)
        protocol.set_parser(_ExecParser(queue), queue)  # as aiodocker's Stream._init does
        protocol.data_received(wire[:cut])  # arrived before the loop handled the upgrade
        stream = SimpleNamespace(_resp=SimpleNamespace(connection=SimpleNamespace(
            protocol=protocol)), _queue=queue)
        reader = take_over_frames(stream)  # type: ignore[arg-type]
        protocol.data_received(wire[cut:])
        await reader.wait()
        assert reader.take() == b"one\n" + b"two\n" * 100 + b"3\n", cut
        assert reader.notices == [(4, b"note")]
