"""Text for files: terminal escape sequences (colours, cursor moves, titles) removed.

The terminal keeps its colours; out.log and deploy.log are read with ``less``, ``grep`` and
editors, where ``ESC[91m`` is noise (a client build's yarn warnings are coloured).

Hand-written, after ECMA-48 (5th edition, sections 5.3-5.6) and xterm's control sequences:
rich (already a dependency) has a regex for *parsing* SGR, but it leaves OSC strings ended
by BEL (titles, hyperlinks) and a lone ESC in the text; PyPI's ``strip-ansi`` (2020) handles
CSI only. The property test (tests/test_clean_text.py) checks that no ESC or C1 control is
ever left and that text without them is unchanged.
"""

from __future__ import annotations

import re

_SEQUENCES = re.compile(
    r"""
    (?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]                  # CSI: ESC [ params intermediates final
  | (?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])          # OSC, DCS, SOS, PM, APC string ...
        [^\x07\x1b\x9c\n\r]*(?:\x07|\x1b\\|\x9c)?  # ... up to BEL or ST (or line end)
  | \x1b[ -/]+[0-~]                                   # nF: ESC ( B and other designations
  | \x1b[0-~]                                         # Fp, Fe, Fs: ESC 7, ESC M, ESC c ...
  | [\x1b\x80-\x9f]                                   # what is left: a lone ESC, C1 controls
    """,
    re.VERBOSE,
)
_ANY = re.compile(r"[\x1b\x80-\x9f]")


def strip_escapes(text: str) -> str:
    """``text`` without any terminal escape sequence; text without ESC/C1 is returned as is."""
    return _SEQUENCES.sub("", text) if _ANY.search(text) else text
