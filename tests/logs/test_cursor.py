"""The position rule (issue 23 defect 1): a saved position counts only bytes on the host
disk, stays in the old file across a rotation switch until the old file's last byte is
written, and is never negative."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from loon_supervisor.streams.cursor import Cursor, Position


@dataclass
class Copy:
    """What a cursor reads of its StreamCopy."""

    received: int = 0
    written: int = 0
    written_tail: bytes = b""
    recent: bytes = b""

    def take(self, data: bytes) -> None:
        self.received += len(data)
        self.recent = (self.recent + data)[-64:]

    def write(self, data: bytes) -> None:
        self.written += len(data)
        self.written_tail = (self.written_tail + data)[-64:]


def test_a_rotation_switch_keeps_the_position_in_the_old_file_until_it_is_written() -> None:
    copy = Copy()
    cur = Cursor.fresh(copy)
    cur.set_inode(10)
    copy.take(b"one\ntwo\nhalf a li")  # old file: 17 bytes taken
    copy.write(b"one\n")  # 4 on disk, the rest still buffered
    cur.switch(20, copy)  # the old file was rotated away; the new one starts
    copy.take(b"new\n")
    # Before: base reset to the new file and the old file's buffered bytes charged to it
    # (a position of -13 in the new file). Now: where the host file really ends.
    pos = cur.position(copy)
    assert (pos.inode, pos.pos, pos.host, pos.tail) == (10, 4, 4, b"one\n")
    assert pos.chain == ((10, 0, 17), (20, 0, None))  # the files read past it, in order
    copy.write(b"two\nhalf a li")  # at the seam: the new file's byte 0, the old one known
    pos = cur.position(copy)
    assert (pos.inode, pos.pos, pos.host) == (20, 0, 17)
    assert [(k.inode, k.size) for k in pos.older] == [(10, 17)]
    copy.write(b"new\n")
    pos = cur.position(copy)
    assert (pos.inode, pos.pos, pos.host, pos.tail) == (20, 4, 21, b"new\n")
    assert cur.read_pos(copy) == 4


def test_bytes_that_failed_to_reach_the_disk_are_not_counted() -> None:
    copy = Copy()
    cur = Cursor.fresh(copy)
    cur.set_inode(10)
    copy.take(b"a\nb\nc\n")
    copy.write(b"a\n")  # then ENOSPC: b and c dropped
    cur.switch(20, copy)  # a rotation while the disk is full
    copy.take(b"d\n")
    pos = cur.position(copy)
    assert (pos.inode, pos.pos, pos.host) == (10, 2, 2)  # a resume reads b, c, d again


def test_impossible_positions_are_refused() -> None:
    with pytest.raises(ValueError):
        Position(10, -18, 0)
    assert Position.from_json({"inode": 10, "pos": -14560, "host": 3}) is None
    assert Position.from_json({"inode": 10, "pos": 5, "host": 5, "tail": "!!"}) is None
    old = Position.from_json({"inode": 10, "pos": 5, "host": 7})  # before fingerprints
    assert old == Position(10, 5, 7, None)
    with pytest.raises(ValueError):
        Cursor.fresh(Copy()).switch(1, Copy(), pos=-1)


def test_a_resume_carries_the_host_files_growth_and_refuses_to_go_negative() -> None:
    saved = Position(10, 100, 50, b"x" * 64)
    grown = Copy(received=60, written=60, written_tail=b"y" * 10)
    cur, note = Cursor.resume(saved, grown)
    assert cur.verify and note is None
    assert cur.read_pos(grown) == 110 and cur.fingerprint(grown) == (b"x" * 54 + b"y" * 10)
    shrunk = Copy(received=0, written=0)  # a power loss took the host file's last bytes
    cur, note = Cursor.resume(Position(10, 20, 50, b"z" * 20), shrunk)
    assert cur.read_pos(shrunk) == 0 and note is not None and "shorter" in note


def test_a_position_keeps_the_bytes_read_past_the_host_and_a_resume_checks_them() -> None:
    """One byte on the host (the disk filled): that byte alone names nearly any file with
    the inode; the bytes read past it name the followed file (seed 909 of the model)."""
    copy = Copy()
    cur = Cursor.fresh(copy)
    cur.set_inode(10)
    copy.take(b"\x00<0> #0\n")
    copy.write(b"\x00")
    pos = cur.position(copy)
    assert (pos.pos, pos.tail, pos.ahead) == (1, b"\x00", b"<0> #0\n")
    again = Position.from_json(pos.to_json())
    assert again == pos
    # a new logger whose host file got two more bytes after the save: those came from
    # ``ahead`` one for one, and the rest of it is what the followed file holds next
    later = Copy(received=3, written=3, written_tail=b"\x00<0", recent=b"\x00<0")
    resumed, note = Cursor.resume(pos, later)
    assert note is None and resumed.read_pos(later) == 3 and resumed.ahead == b"> #0\n"
    # nothing read past the host: nothing kept
    copy.write(b"<0> #0\n")
    assert cur.position(copy).ahead == b""


def test_a_resumed_cursor_saves_its_saved_position_until_it_is_verified() -> None:
    """Saved: file 10 at byte 0 with the chain 10 (281 bytes) then 11; the host then got
    300 bytes. A save before the catch-up settles keeps that chain, not "file 10 at 300"
    (past its end: after rotations deleted file 10, that sent the collection to the next
    file's start, and its first line was copied twice)."""
    saved = Position(10, 0, 0, b"", chain=((10, 0, 281), (11, 0, None)), ends=(b"#2\n",))
    host = Copy(received=300, written=300, written_tail=b"after burst #3\n")
    cur, _ = Cursor.resume(saved, host)
    assert cur.verify and cur.read_pos(host) == 300
    assert cur.position(host) == saved
    # verified: file 11 at byte 19; what it saves from then on is the new place
    cur.switch(11, host, 19, b"after burst #3\n")
    host.take(b"x\n")
    host.write(b"x\n")
    after = cur.position(host)
    assert (after.inode, after.pos, after.host, after.chain) == (11, 21, 302, ())
