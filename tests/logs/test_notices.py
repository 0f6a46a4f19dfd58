"""tail's notices inside the merged stream: found at the exact seam, never mistaken for data
split across reads, and data that only looks similar passes through."""

from __future__ import annotations

from loon_supervisor.engine.exec_streams import classify, follow_command, hold_back, split_notice

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


def test_follow_command_merges_stderr_and_quotes_the_path() -> None:
    cmd = follow_command("/var/log/my app.log", 41, G)
    assert cmd[:2] == ["sh", "-c"]
    assert cmd[2] == "exec /usr/bin/tail -c +42 -F -s 0.05 '/var/log/my app.log' 2>&1"
    assert "-F" not in follow_command(P, 0, None, follow=False)[2]
