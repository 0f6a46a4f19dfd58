"""The terminal: compose-style ``service | line`` with a coloured, aligned prefix.

Only this module knows ANSI. Colour wraps the prefix only, and only on a TTY.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

_COLOURS = ["36", "33", "32", "35", "34", "91", "96", "93", "92", "95", "94"]


class Printer:
    def __init__(self, names: list[str], out: TextIO | None = None,
                 colour: bool | None = None, show_prefix: bool = True,
                 timestamps: bool = False) -> None:
        self.out = out or sys.stdout
        self.show_prefix = show_prefix
        self.timestamps = timestamps
        self.colour = self.out.isatty() if colour is None else colour
        self.width = max((len(n) for n in names), default=0)
        self._colours = {n: _COLOURS[i % len(_COLOURS)] for i, n in enumerate(names)}

    def prefix(self, name: str) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S ") if self.timestamps else ""
        if not self.show_prefix:
            return stamp
        text = f"{stamp}{name.ljust(self.width)} | "
        if self.colour:
            return f"\x1b[{self._colours.get(name, '37')}m{text}\x1b[0m"
        return text

    def lines(self, name: str, data: bytes) -> None:
        """Print complete lines (bad bytes replaced); files keep the original bytes."""
        p = self.prefix(name)
        text = data.decode("utf-8", errors="replace")
        self.out.write("".join(f"{p}{line}\n" for line in text.splitlines()))
        self.out.flush()

    def system(self, text: str) -> None:
        self.out.write(f"{text}\n")
        self.out.flush()
