"""tail's notices inside the merged stream: found at the exact seam, never mistaken for data
split across reads; a line that only reads like a notice is checked against the file and
stays data when the file holds it (issue 23); the shell's own stderr messages are notices."""

from __future__ import annotations

import asyncio
import struct
from types import SimpleNamespace
from typing import Any

import pytest
from aiodocker._flow_control_queue import FlowControlDataQueue
from aiodocker.stream import _ExecParser
from aiohttp.client_proto import ResponseHandler

from loon_supervisor.engine.exec.tail import (
    STARTED,
    FollowedFile,
    classify,
    follow_command,
    hold_back,
    split_notice,
)

P = "/var/log/loon/a.log"
G = "/usr/bin/tail"


def test_notice_splits_the_stream_at_the_seam() -> None:
    data = b"old 1\nold 2\n/usr/bin/tail: '" + P.encode() + b"' has been replaced;  following new file\nnew 1\n"
    before, notice, after = split_notice(data, P, G)
    assert before == b"old 1\nold 2\n"
    assert notice is not None and classify(notice) == "replaced"
    assert after == b"new 1\n"


def test_notice_after_a_partial_line() -> None:
    data = b"no newline yet/usr/bin/tail: " + P.encode() + b": file truncated\nnew\n"
    before, notice, after = split_notice(data, P, G)
    assert before == b"no newline yet" and after == b"new\n"
    assert notice is not None and classify(notice) == "truncated"


def test_other_files_and_plain_data_are_not_notices() -> None:
    data = b"tail: '/var/log/loon/b.log' has been replaced\nuser says /usr/bin/tail: hi\n"
    assert split_notice(data, P, G) == (data, None, b"")


def test_inotify_fallback_notice_is_removed_but_is_no_rotation() -> None:
    data = b"x\n/usr/bin/tail: inotify cannot be used, reverting to polling\ny\n"
    before, notice, after = split_notice(data, P, G)
    assert (before, after) == (b"x\n", b"y\n")
    assert notice is not None and classify(notice) is None


def test_hold_back_keeps_only_a_possible_notice_start() -> None:
    assert hold_back(b"line\n/usr/bin/tail: '/var", G) == (b"line\n", b"/usr/bin/tail: '/var")
    assert hold_back(b"line\n/usr/b", G) == (b"line\n", b"/usr/b")
    assert hold_back(b"line\n", G) == (b"line\n", b"")
    assert hold_back(b"done /usr/bin/tail: x\n", G) == (b"done /usr/bin/tail: x\n", b"")


def frame(kind: int, data: bytes) -> bytes:
    return struct.pack(">BxxxL", kind, len(data)) + data


class File:
    """The followed file's bytes, for ``read_file``, and every read made."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.asked: list[tuple[int, int]] = []

    async def read(self, at: int, count: int) -> bytes:
        self.asked.append((at, count))
        return self.data[at:at + count]


def attached(notices: list[str], offset: int, file: File, started: bool = True
             ) -> tuple[ResponseHandler, FollowedFile]:
    """A FollowedFile on an aiohttp protocol as aiodocker leaves it after the upgrade (with
    the shell's STARTED line already sent, unless ``started`` is False)."""
    protocol = ResponseHandler(asyncio.get_running_loop())
    queue: FlowControlDataQueue[Any] = FlowControlDataQueue(protocol, limit=2 ** 16)
    protocol.set_parser(_ExecParser(queue), queue)
    stream = SimpleNamespace(_resp=SimpleNamespace(connection=SimpleNamespace(
        protocol=protocol)), _queue=queue)
    followed = FollowedFile(stream, P, notices.append, G, offset,  # type: ignore[arg-type]
                            file.read)
    followed._frames._delay = 0  # noqa: SLF001  (no tick: the test has no transport)
    if started:
        protocol.data_received(frame(1, STARTED))
    return protocol, followed


async def drain(followed: FollowedFile) -> bytes:
    out = b""
    while (data := await followed.receive()) is not None:
        out += data
    return out


FAKES = (b"tail: inotify resources exhausted\n"
         b"/usr/bin/tail: inotify resources exhausted\n"
         b"/usr/bin/tail: '" + P.encode() + b"' has been replaced;  following new file\n"
         b"/usr/bin/tail: " + P.encode() + b": file truncated\n")


@pytest.mark.anyio
async def test_service_lines_that_read_like_notices_are_data() -> None:
    content = b"skip" + b"a\n" + FAKES + b"end\n"
    file = File(content)
    notices: list[str] = []
    protocol, followed = attached(notices, 4, file)
    wire = content[4:]
    protocol.data_received(frame(1, wire[:30]) + frame(1, wire[30:]))
    followed._frames.feed_eof()  # noqa: SLF001
    assert await drain(followed) == wire
    assert followed.event is None and notices == []
    # one read per batch, from the first candidate on ("tail: ..." is not even a candidate:
    # this tail runs as /usr/bin/tail)
    assert [at for at, _ in file.asked] == [6 + 34], file.asked


@pytest.mark.anyio
async def test_a_real_notice_ends_the_data_at_the_seam_and_fakes_before_it_stay() -> None:
    fake = b"tail: inotify resources exhausted\n"
    file = File(b"old 1\n" + fake + b"old 2\n")  # the file has the fake, not the notice
    notices: list[str] = []
    protocol, followed = attached(notices, 0, file)
    real = b"/usr/bin/tail: '" + P.encode() + b"' has been replaced;  following new file\n"
    protocol.data_received(frame(1, b"old 1\n" + fake + b"old 2\n" + real + b"new 1\n"))
    assert await drain(followed) == b"old 1\n" + fake + b"old 2\n"
    assert followed.event == "replaced"
    assert notices == [real.decode().strip()]


@pytest.mark.anyio
async def test_a_real_non_rotation_notice_is_removed() -> None:
    file = File(b"x\ny\n")
    notices: list[str] = []
    protocol, followed = attached(notices, 0, file)
    real = b"/usr/bin/tail: inotify cannot be used, reverting to polling\n"
    protocol.data_received(frame(1, b"x\n" + real + b"y\n"))
    followed._frames.feed_eof()  # noqa: SLF001
    assert await drain(followed) == b"x\ny\n"
    assert followed.event is None and notices == [real.decode().strip()]


@pytest.mark.anyio
async def test_the_shell_s_own_stderr_message_is_a_notice() -> None:
    notices: list[str] = []
    protocol, followed = attached(notices, 0, File(b""), started=False)
    protocol.data_received(frame(2, f"loon: {P} was replaced before tail opened it\n".encode()))
    assert await drain(followed) == b""
    assert followed.event == "replaced" and len(notices) == 1


def test_follow_command_merges_stderr_and_quotes_the_path() -> None:
    cmd = follow_command("/var/log/my app.log", 41, G)
    assert cmd[:2] == ["sh", "-c"]
    assert cmd[2] == ("echo loon-follower-started; "
                      "exec /usr/bin/tail -c +42 -F -s 0.05 '/var/log/my app.log' 2>&1")
    assert "-F" not in follow_command(P, 0, None, follow=False)[2]


def test_follow_command_checks_the_inode_right_before_tail_opens() -> None:
    script = follow_command(P, 0, G, inode=1234)[2]
    assert script.startswith(f"i=$(stat -L -c %i {P} 2>/dev/null)")
    assert '"$i" != "1234"' in script and "was replaced before tail opened it" in script
    assert script.endswith(f"echo loon-follower-started; exec {G} -c +1 -F -s 0.05 {P} 2>&1")
    assert classify(b"loon: /x was replaced before tail opened it\n") == "replaced"


@pytest.mark.anyio
async def test_an_exec_that_did_not_start_is_an_error_not_data() -> None:
    """The engine writes its own error into an exec's stdout when the exec fails to start
    after the attach (containerd not ready after an engine restart): without the shell's
    STARTED line first, nothing is data (a host file once began with it)."""
    from loon_supervisor.errors import EngineError

    notices: list[str] = []
    protocol, followed = attached(notices, 0, File(b""), started=False)
    protocol.data_received(frame(1, b"transport is closing: unavailable\r\n"))
    followed._frames.feed_eof()  # noqa: SLF001
    with pytest.raises(EngineError, match="did not start: transport is closing"):
        await followed.receive()


@pytest.mark.anyio
async def test_data_in_the_same_frame_as_started_is_handed_on_at_once() -> None:
    notices: list[str] = []
    protocol, followed = attached(notices, 0, File(b""), started=False)
    protocol.data_received(frame(1, STARTED[:5]) + frame(1, STARTED[5:] + b"a\n"))
    assert await followed.receive() == b"a\n"
