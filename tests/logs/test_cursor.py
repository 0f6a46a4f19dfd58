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
