"""Files hold no terminal escape sequences (loon_supervisor.sinks.clean)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loon_supervisor.sinks.clean import strip_escapes
from loon_supervisor.sinks.session import EventLog, event_lines
from tests.conftest import examples

ESC = "\x1b"


def test_the_usual_sequences_are_removed() -> None:
    cases = {
        "\x1b[91mwarning\x1b[0m package": "warning package",      # SGR, as yarn colours
        "\x1b[1;38;5;208mbold\x1b[m": "bold",                      # 256 colours, reset
        "\x1b[2K\x1b[1Gprogress": "progress",                      # erase line, column
        "\x1b]0;title\x07text": "text",                            # OSC title, BEL
        "\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\": "link",      # OSC 8 hyperlink, ST
        "\x1b(Bplain": "plain",                                    # nF designation
        "\x1b7saved\x1b8": "saved",                                # Fp save/restore cursor
        "\x9b31mC1\x9b0m": "C1",                                   # 8-bit CSI
        "lone \x1b": "lone ",
        "\x1bP1$r0m\x1b\\after": "after",                          # DCS
    }
    for raw, clean in cases.items():
        assert strip_escapes(raw) == clean, repr(raw)


def test_an_unterminated_string_ends_at_the_line() -> None:
    assert strip_escapes("\x1b]0;never ended\nnext line") == "\nnext line"


@settings(max_examples=examples(500), deadline=None, derandomize=True)
@given(st.text(alphabet=st.characters(codec="utf-8")))
def test_no_escape_or_c1_control_is_ever_left(text: str) -> None:
    out = strip_escapes(text)
    assert ESC not in out and not any("\x80" <= c <= "\x9f" for c in out)


@settings(max_examples=examples(500), deadline=None, derandomize=True)
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_characters=ESC,
                                      exclude_categories=["Cc"])))
def test_text_without_controls_is_unchanged(text: str) -> None:
    assert strip_escapes(text) == text


def test_out_log_lines_are_clean(tmp_path: Path) -> None:
    events = EventLog(tmp_path / "out.log")
    try:
        events.event("build: \x1b[91mwarning \"@hms-dbmi/viv\"\x1b[0m\nnext \x1b[1mline")
    finally:
        events.close()
    data = (tmp_path / "out.log").read_bytes()
    assert b"\x1b" not in data
    assert [line.split(" ", 2)[2] for line in data.decode().splitlines()] == [
        'build: warning "@hms-dbmi/viv"', "next line"]
    assert "\x1b" not in event_lines("\x1b[31mred\x1b[0m")


@pytest.mark.engine
def test_a_build_that_colours_its_output_leaves_no_escape_in_out_log(deploy) -> None:  # type: ignore[no-untyped-def]
    fresh = uuid.uuid4().hex  # never a cached step: the printf must run in this build
    d = deploy({"alpha": "echo up; sleep 3600"},
               build_step=f"printf '\\033[91mcoloured warning\\033[0m \\033]0;title\\007done "
               f"{fresh}\\n'")
    r = d.run("-v", "-d")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "\x1b[91mcoloured warning" in r.stdout  # the terminal keeps the colours
    out = (d.session() / "out.log").read_bytes()
    assert f"coloured warning done {fresh}".encode() in out
    assert b"\x1b" not in out
