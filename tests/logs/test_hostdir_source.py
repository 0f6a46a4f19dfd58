"""HostDirSource against a temp directory, no engine: following, rotation by rename,
copytruncate, truncation, deletion, partial lines, the final stream, and clean closing."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest

from loon_supervisor.streams.sources.base import Moved
from loon_supervisor.streams.sources.hostdir import HostDirSource

pytestmark = pytest.mark.anyio
LOG_DIR = "/var/log/loon"
P = f"{LOG_DIR}/svc.log"


@pytest.fixture
def src(tmp_path: Path) -> HostDirSource:
    return HostDirSource(LOG_DIR, tmp_path, chunk=64)


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as fh:
        fh.write(data)


def ours(tmp_path: Path) -> int:
    """Open descriptors that are inotify instances or files under ``tmp_path``: counting
    every descriptor of the process also counted sockets of earlier tests' event loops that
    the garbage collector happened to close meanwhile (CI saw 21 before, 17 after)."""
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        n += target == "anon_inode:inotify" or target.startswith(str(tmp_path))
    return n


async def take(followed, n: int, timeout: float = 5) -> bytes:  # type: ignore[no-untyped-def]
    """Receive until ``n`` bytes came (each receive must end within ``timeout``)."""
    got = b""
    with anyio.fail_after(timeout):
        while len(got) < n:
            data = await followed.receive()
            assert data is not None, f"ended early after {got!r} ({followed.event})"
            got += data
    return got


async def test_paths_are_translated_and_confined(src: HostDirSource, tmp_path: Path) -> None:
    assert src.host_path(P) == tmp_path / "svc.log"
    assert src.host_path(f"{LOG_DIR}/svc.log.1") == tmp_path / "svc.log.1"
    with pytest.raises(ValueError):
        src.host_path("/etc/passwd")
    with pytest.raises(ValueError):
        src.host_path(f"{LOG_DIR}/../../etc/passwd")


async def test_stat_read_size_and_stream(src: HostDirSource, tmp_path: Path) -> None:
    f = tmp_path / "svc.log"
    data = b"".join(b"line %d\n" % i for i in range(100))
    f.write_bytes(data)
    stats = await src.stat([P, f"{P}.1"])
    assert stats == {P: (f.stat().st_ino, len(data))}
    assert await src.read_at(P, 5, 10) == data[5:15]
    assert await src.read_at(f"{P}.1", 0, 10) == b""
    assert await src.file_size(P) == len(data)
    assert await src.file_size(f"{P}.1") is None
    chunks = [c async for c in src.stream(P, 7)]
    assert b"".join(chunks) == data[7:]
    assert max(len(c) for c in chunks) <= 64  # a chunk at a time, never the whole file
    assert [c async for c in src.stream(f"{P}.1", 0)] == []


async def test_a_read_by_inode_never_reads_another_file(src: HostDirSource,
                                                        tmp_path: Path) -> None:
    """A check names the file its stat saw: once the path holds another one (a rotation in
    between), or none, the read raises Moved instead of judging that file by another's
    bytes (issue 23, fast rotation)."""
    append(tmp_path / "svc.log", b"old line\n")
    inode = (await src.stat([P]))[P][0]
    assert await src.read_at(P, 0, 3, inode=inode) == b"old"
    os.rename(tmp_path / "svc.log", tmp_path / "svc.log.1")
    with pytest.raises(Moved):
        await src.read_at(P, 0, 3, inode=inode)  # none there
    append(tmp_path / "svc.log", b"new line\n")
    with pytest.raises(Moved):
        await src.read_at(P, 0, 3, inode=inode)  # another file there
    assert await src.read_at(P, 0, 3) == b"new"  # by name: whatever is there
    assert await src.read_at(f"{P}.1", 0, 3, inode=inode) == b"old"


async def test_follow_sees_appends_and_partial_lines(src: HostDirSource, tmp_path: Path) -> None:
    f = tmp_path / "svc.log"
    f.write_bytes(b"old\nkept ")
    notices: list[str] = []
    async with src.open_follow(P, 4, "loon/svc", notices.append) as followed:
        assert await take(followed, 5) == b"kept "
        append(f, b"half")  # a line written in two parts arrives as written
        assert await take(followed, 4) == b"half"
        append(f, b" line\n" + b"x" * 200 + b"\n")
        assert await take(followed, 206) == b" line\n" + b"x" * 200 + b"\n"
        assert followed.event is None
    assert notices == []


async def test_follow_waits_without_polling(src: HostDirSource, tmp_path: Path) -> None:
    """Nothing written: receive blocks (on inotify) until a write, then returns at once."""
    f = tmp_path / "svc.log"
    f.write_bytes(b"")
    async with src.open_follow(P, 0, "m", lambda _: None) as followed:
        with anyio.move_on_after(0.3) as idle:
            await followed.receive()
        assert idle.cancelled_caught
        async with anyio.create_task_group() as tg:
            async def write_later() -> None:
                await anyio.sleep(0.05)
                append(f, b"now\n")
            tg.start_soon(write_later)
            start = anyio.current_time()
            assert await take(followed, 4, timeout=2) == b"now\n"
            assert anyio.current_time() - start < 1.0  # an event, not a once-a-second poll


async def test_rename_rotation_reads_the_old_file_to_its_end(src: HostDirSource,
                                                             tmp_path: Path) -> None:
    f = tmp_path / "svc.log"
    f.write_bytes(b"a1\n")
    notices: list[str] = []
    async with src.open_follow(P, 0, "m", notices.append) as followed:
        assert await take(followed, 3) == b"a1\n"
        fd = os.open(f, os.O_WRONLY | os.O_APPEND)  # a writer that keeps its descriptor
        f.rename(tmp_path / "svc.log.1")
        os.write(fd, b"a2\n")  # lands in the renamed file
        os.close(fd)
        f.write_bytes(b"b1\n")  # the new file at the path
        rest = b""
        with anyio.fail_after(5):
            while (data := await followed.receive()) is not None:
                rest += data
        assert rest == b"a2\n"
        assert followed.event == "replaced"
    assert any("has been replaced" in n for n in notices)
    # the follower then resyncs: .1 is at its end, the new file starts at 0
    assert (await src.stat([f"{P}.1"]))[f"{P}.1"][1] == 6


async def test_rename_without_a_new_file(src: HostDirSource, tmp_path: Path) -> None:
    f = tmp_path / "svc.log"
    f.write_bytes(b"a1\n")
    notices: list[str] = []
    async with src.open_follow(P, 3, "m", notices.append) as followed:
        async with anyio.create_task_group() as tg:
            async def rotate() -> None:
                await anyio.sleep(0.05)
                f.rename(tmp_path / "svc.log.1")
            tg.start_soon(rotate)
            with anyio.fail_after(5):
                assert await followed.receive() is None
        assert followed.event == "replaced"
    assert any("inaccessible" in n for n in notices)


async def test_copytruncate_and_truncation(src: HostDirSource, tmp_path: Path) -> None:
    f = tmp_path / "svc.log"
    f.write_bytes(b"one\ntwo\n")
    notices: list[str] = []
    async with src.open_follow(P, 0, "m", notices.append) as followed:
        assert await take(followed, 8) == b"one\ntwo\n"
        async with anyio.create_task_group() as tg:
            async def copytruncate() -> None:
                await anyio.sleep(0.05)
                (tmp_path / "svc.log.1").write_bytes(f.read_bytes())
                with open(f, "r+b") as fh:
                    fh.truncate(0)
            tg.start_soon(copytruncate)
            with anyio.fail_after(5):
                assert await followed.receive() is None
        assert followed.event == "truncated"
        assert await followed.receive() is None  # stays ended
    assert any("truncated" in n for n in notices)


async def test_position_past_the_end_is_a_truncation(src: HostDirSource,
                                                     tmp_path: Path) -> None:
    (tmp_path / "svc.log").write_bytes(b"short\n")
    async with src.open_follow(P, 100, "m", lambda _: None) as followed:
        with anyio.fail_after(5):
            assert await followed.receive() is None
        assert followed.event == "truncated"


async def test_deleted_file(src: HostDirSource, tmp_path: Path) -> None:
    f = tmp_path / "svc.log"
    f.write_bytes(b"x\n")
    async with src.open_follow(P, 2, "m", lambda _: None) as followed:
        async with anyio.create_task_group() as tg:
            async def delete() -> None:
                await anyio.sleep(0.05)
                f.unlink()
            tg.start_soon(delete)
            with anyio.fail_after(5):
                assert await followed.receive() is None
        assert followed.event == "replaced"


async def test_missing_file_at_open(src: HostDirSource) -> None:
    notices: list[str] = []
    async with src.open_follow(P, 0, "m", notices.append) as followed:
        assert await followed.receive() is None
        assert followed.event == "replaced"
    assert "No such file" in notices[0]


async def test_not_following_reads_to_the_current_end(src: HostDirSource,
                                                      tmp_path: Path) -> None:
    f = tmp_path / "svc.log.1"
    data = b"z" * 1000
    f.write_bytes(data)
    async with src.open_follow(f"{P}.1", 10, "m", lambda _: None, follow=False) as rest:
        got = b""
        with anyio.fail_after(5):
            while (chunk := await rest.receive()) is not None:
                got += chunk
    assert got == data[10:]
    assert rest.event is None


async def test_close_ends_a_waiting_follower_and_frees_descriptors(
        src: HostDirSource, tmp_path: Path) -> None:
    (tmp_path / "svc.log").write_bytes(b"")
    before = ours(tmp_path)
    for _ in range(20):
        with anyio.move_on_after(0.02):
            async with src.open_follow(P, 0, "m", lambda _: None) as followed:
                await followed.receive()  # cancelled while waiting on inotify
    assert ours(tmp_path) == before


async def test_full_chunks_end_at_a_line(src: HostDirSource, tmp_path: Path) -> None:
    """Chunks of 64 bytes here: each full read is cut after its last newline (the rest is
    read again); a line longer than a chunk still comes through; the bytes are exact."""
    lines = b"".join(b"line %03d\n" % i for i in range(50)) + b"y" * 150 + b"\n" + b"tail"
    (tmp_path / "svc.log").write_bytes(lines)
    pieces: list[bytes] = []
    async with src.open_follow(P, 0, "m", lambda _: None, follow=False) as rest:
        with anyio.fail_after(5):
            while (chunk := await rest.receive()) is not None:
                pieces.append(chunk)
    assert b"".join(pieces) == lines
    assert all(len(p) <= 64 for p in pieces)
    assert all(p.endswith(b"\n") for p in pieces[:-1] if b"\n" in p)
    assert pieces[-1].endswith(b"tail")  # a partial last line is given as it is


async def test_followers_share_one_descriptor_and_each_keeps_its_stream(
        src: HostDirSource, tmp_path: Path) -> None:
    """Three files in one directory: one inotify descriptor for all; interleaved bursts reach
    the right follower whole and in order across the hub's deaf windows; closing one
    follower leaves the others following; the last close releases the descriptor."""
    names = ["a", "b", "c"]
    for n in names:
        (tmp_path / f"{n}.log").write_bytes(b"")
    before = ours(tmp_path)
    got: dict[str, bytes] = {n: b"" for n in names}
    expected = {n: b"".join(b"%s %d\n" % (n.encode(), i) for i in range(200)) for n in names}
    async with src.open_follow(f"{LOG_DIR}/a.log", 0, "m", lambda _: None) as fa, \
            src.open_follow(f"{LOG_DIR}/b.log", 0, "m", lambda _: None) as fb:
        # two followed files: their two fds and one shared inotify descriptor
        assert ours(tmp_path) == before + 3
        async with src.open_follow(f"{LOG_DIR}/c.log", 0, "m", lambda _: None) as fc:
            followed = {"a": fa, "b": fb, "c": fc}
            async with anyio.create_task_group() as tg:
                async def reader(n: str) -> None:
                    got[n] = await take(followed[n], len(expected[n]))

                for n in names:
                    tg.start_soon(reader, n)
                for i in range(200):
                    for n in names:
                        append(tmp_path / f"{n}.log", b"%s %d\n" % (n.encode(), i))
                    if i % 50 == 0:
                        await anyio.sleep(0.01)  # some lines land in a deaf window
        assert got == expected
        append(tmp_path / "a.log", b"after c closed\n")
        assert await take(fa, 15) == b"after c closed\n"
    assert ours(tmp_path) == before


async def test_a_write_after_an_empty_read_is_read_at_its_first_event(
        src: HostDirSource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first short read happens while the follower still checks for a rotation, so the
    next read finds nothing and waits. The write that ends that wait must be read then, not
    after one more event: the last write of a burst comes as one (merged) event, and missing
    it stalled a stream until the once-a-second sweep (CI saw it in the 8 x 100k test)."""
    import loon_supervisor.streams.sources.hostdir as hs

    monkeypatch.setattr(hs, "SWEEP", 3600.0)  # nothing but inotify may wake the follower
    f = tmp_path / "svc.log"
    f.write_bytes(b"first\n")
    async with src.open_follow(P, 0, "m", lambda _: None) as followed:
        assert await take(followed, 6) == b"first\n"
        async with anyio.create_task_group() as tg:
            got: list[bytes] = []

            async def receive() -> None:
                got.append(await take(followed, 7))

            tg.start_soon(receive)
            await anyio.sleep(0.2)  # the follower read nothing more and waits
            append(f, b"second\n")  # one event, and no other after it
    assert got == [b"second\n"]


async def test_a_stopped_container_s_followers_end_at_their_files_ends(
        src: HostDirSource, tmp_path: Path) -> None:
    """After container_stopped() a waiting follower reads what is left and ends (None, no
    event), without any further inotify news; one opened later ends at its file's end."""
    f = tmp_path / "svc.log"
    f.write_bytes(b"a\n")
    async with src.open_follow(P, 0, "m", lambda _: None) as followed:
        assert await take(followed, 2) == b"a\n"
        got: list[bytes | None] = []

        async def receive_all() -> None:
            while (data := await followed.receive()) is not None:
                got.append(data)
            got.append(None)
        async with anyio.create_task_group() as tg:
            tg.start_soon(receive_all)
            await anyio.sleep(0.05)  # the follower waits on inotify
            assert got == []
            with open(f, "ab") as fh:  # the last bytes, written just before the stop
                fh.write(b"last" * 40 + b"\n")
            src.container_stopped()
        assert b"".join(g for g in got if g) == b"last" * 40 + b"\n" and got[-1] is None
        assert followed.event is None
    append(f, b"more\n")
    async with src.open_follow(P, 2, "m", lambda _: None) as later:
        with anyio.fail_after(5):
            rest = b""
            while (data := await later.receive()) is not None:
                rest += data
        assert rest == b"last" * 40 + b"\nmore\n" and later.event is None


async def test_a_stopped_container_s_rotation_is_still_reported(
        src: HostDirSource, tmp_path: Path) -> None:
    f = tmp_path / "svc.log"
    f.write_bytes(b"a\n")
    async with src.open_follow(P, 0, "m", lambda _: None) as followed:
        assert await take(followed, 2) == b"a\n"
        f.rename(tmp_path / "svc.log.1")
        f.write_bytes(b"b\n")
        src.container_stopped()
        with anyio.fail_after(5):
            assert await followed.receive() is None
        assert followed.event == "replaced"  # the collection reads the new file


@pytest.mark.parametrize("limit", ["instances", "watches"])
async def test_inotify_limits_fall_back_to_polling(
        src: HostDirSource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: str) -> None:
    """No inotify instance left (EMFILE: fs.inotify.max_user_instances) or no watch left
    (ENOSPC: fs.inotify.max_user_watches): the file is polled, appends and a rotation are
    still seen, the run goes on, and the notice says why once (issue 23)."""
    import errno

    from inotify_simple import INotify

    from loon_supervisor.streams.sources import hostdir as hostdir_source

    if limit == "instances":
        def no_instance() -> INotify:
            raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))
        monkeypatch.setattr(hostdir_source, "INotify", no_instance)
    else:
        def no_watch(self: INotify, path: str, mask: int) -> int:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        monkeypatch.setattr(INotify, "add_watch", no_watch)
    f = tmp_path / "svc.log"
    f.write_bytes(b"a\n")
    notices: list[str] = []
    async with src.open_follow(P, 0, "m", notices.append) as followed:
        assert await take(followed, 2) == b"a\n"
        append(f, b"b\n")
        assert await take(followed, 2, timeout=2) == b"b\n"
        f.rename(tmp_path / "svc.log.1")
        f.write_bytes(b"c\n")
        with anyio.fail_after(2):
            assert await followed.receive() is None
        assert followed.event == "replaced"
    knob = "max_user_instances" if limit == "instances" else "max_user_watches"
    polls = [n for n in notices if "polling every" in n]
    assert len(polls) == 1 and knob in polls[0], notices
    assert ours(tmp_path) == 0


async def test_a_file_replaced_between_stat_and_open_is_not_read(
        src: HostDirSource, tmp_path: Path) -> None:
    """The follower's stat saw one inode; by the open the path names another file: it ends
    at once with ``replaced`` and reads nothing of the other file (open, then fstat)."""
    f = tmp_path / "svc.log"
    f.write_bytes(b"old file\n")
    seen = f.stat().st_ino
    f.rename(tmp_path / "svc.log.1")
    f.write_bytes(b"new file, other inode\n")
    notices: list[str] = []
    async with src.open_follow(P, 4, "m", notices.append, inode=seen) as followed:
        with anyio.fail_after(2):
            assert await followed.receive() is None
        assert followed.event == "replaced"
    assert notices == [f"'{P}' was replaced before it was opened"]
    async with src.open_follow(P, 4, "m", notices.append, inode=f.stat().st_ino) as followed:
        assert await take(followed, 18) == b"file, other inode\n"
