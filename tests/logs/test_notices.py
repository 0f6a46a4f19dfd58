"""tail's notices come from the stderr frames only: placed where the engine's frames put
them, whole lines even when a notice comes in pieces, and a service line that merely reads
like a notice stays data."""

from __future__ import annotations

import asyncio
import struct
from types import SimpleNamespace
from typing import Any

import pytest
from aiodocker._flow_control_queue import FlowControlDataQueue
from aiodocker.stream import _ExecParser
from aiohttp.client_proto import ResponseHandler

from loon_supervisor.engine.exec_streams import FollowedFile, classify, follow_command

pytestmark = pytest.mark.anyio

P = "/var/log/loon/a.log"
G = "/usr/bin/tail"


def frame(kind: int, data: bytes) -> bytes:
    return struct.pack(">BxxxL", kind, len(data)) + data


def attached(notices: list[str]) -> tuple[ResponseHandler, FollowedFile]:
    """A FollowedFile on an aiohttp protocol as aiodocker leaves it after the upgrade."""
    protocol = ResponseHandler(asyncio.get_running_loop())
    queue: FlowControlDataQueue[Any] = FlowControlDataQueue(protocol, limit=2 ** 16)
    protocol.set_parser(_ExecParser(queue), queue)
    stream = SimpleNamespace(_resp=SimpleNamespace(connection=SimpleNamespace(
        protocol=protocol)), _queue=queue)
    followed = FollowedFile(stream, P, notices.append, G)  # type: ignore[arg-type]
    followed._frames._delay = 0  # noqa: SLF001  (no tick: the test has no transport)
    return protocol, followed


async def drain(followed: FollowedFile) -> bytes:
    out = b""
    while (data := await followed.receive()) is not None:
        out += data
    return out


async def test_service_lines_that_read_like_notices_are_data() -> None:
    notices: list[str] = []
    protocol, followed = attached(notices)
    lines = (b"tail: inotify resources exhausted\n"
             b"/usr/bin/tail: '" + P.encode() + b"' has been replaced;  following new file\n"
             b"/usr/bin/tail: " + P.encode() + b": file truncated\n"
             b"tail: ")  # and a line cut right after what looks like a notice's start
    protocol.data_received(frame(1, lines[:40]) + frame(1, lines[40:]))
    protocol.data_received(frame(1, b"end\n"))
    followed._frames.feed_eof()  # noqa: SLF001
    assert await drain(followed) == lines + b"end\n"
    assert followed.event is None and notices == []


async def test_a_rotation_notice_in_pieces_ends_the_data_where_it_began() -> None:
    notices: list[str] = []
    protocol, followed = attached(notices)
    protocol.data_received(frame(1, b"old 1\nold 2\n") + frame(2, G.encode() + b": "))
    assert await followed.receive() == b"old 1\nold 2\n"
    # new-file bytes framed before the rest of the notice: held, then dropped
    protocol.data_received(frame(1, b"new 1\n"))
    protocol.data_received(frame(2, b"'" + P.encode() + b"' has been replaced;  following new file"))
    protocol.data_received(frame(2, b"\n") + frame(1, b"new 2\n"))
    assert await followed.receive() is None
    assert followed.event == "replaced"
    assert notices == [f"{G}: '{P}' has been replaced;  following new file"]


async def test_truncation_and_non_rotation_notices() -> None:
    notices: list[str] = []
    protocol, followed = attached(notices)
    protocol.data_received(frame(1, b"a\n") + frame(2, b"tail: inotify cannot be used, "
                                                        b"reverting to polling\n")
                           + frame(1, b"b\n") + frame(2, f"tail: {P}: file truncated\n".encode())
                           + frame(1, b"from the start\n"))
    assert await drain(followed) == b"a\nb\n"
    assert followed.event == "truncated"
    assert notices == ["tail: inotify cannot be used, reverting to polling",
                       f"tail: {P}: file truncated"]


async def test_an_unfinished_notice_counts_at_the_end_of_the_stream() -> None:
    notices: list[str] = []
    protocol, followed = attached(notices)
    protocol.data_received(frame(1, b"x\n") + frame(2, f"tail: cannot open '{P}'".encode())
                           + frame(1, b"late\n"))
    followed._frames.feed_eof()  # noqa: SLF001
    assert await drain(followed) == b"x\n"
    assert followed.event == "replaced" and notices == [f"tail: cannot open '{P}'"]


async def test_an_unfinished_notice_lets_the_data_go_after_a_grace() -> None:
    notices: list[str] = []
    protocol, followed = attached(notices)
    protocol.data_received(frame(1, b"x\n") + frame(2, b"tail: a warning without newline")
                           + frame(1, b"y\n"))
    assert await followed.receive() == b"x\n"
    assert await followed.receive() == b"y\n"  # after HOLD_GRACE, the piece was all of it
    assert followed.event is None and notices == ["tail: a warning without newline"]


def test_classify() -> None:
    assert classify(f"{G}: '{P}' has been replaced;  following new file\n".encode()) == "replaced"
    assert classify(f"{G}: '{P}' has appeared;  following new file\n".encode()) == "replaced"
    assert classify(f"{G}: {P}: file truncated\n".encode()) == "truncated"
    assert classify(b"tail: inotify resources exhausted\n") is None


def test_follow_command_keeps_stderr_apart_and_quotes_the_path() -> None:
    cmd = follow_command("/var/log/my app.log", 41, G)
    assert cmd[:2] == ["sh", "-c"]
    assert cmd[2] == "exec /usr/bin/tail -c +42 -F -s 0.05 '/var/log/my app.log'"
    assert "-F" not in follow_command(P, 0, None, follow=False)[2]


def test_follow_command_checks_the_inode_right_before_tail_opens() -> None:
    script = follow_command(P, 0, G, inode=1234)[2]
    assert script.startswith(f"i=$(stat -L -c %i {P} 2>/dev/null)")
    assert '"$i" != "1234"' in script and "was replaced before tail opened it" in script
    assert script.endswith(f"exec {G} -c +1 -F -s 0.05 {P}")
    assert classify(b"loon: /x was replaced before tail opened it\n") == "replaced"
