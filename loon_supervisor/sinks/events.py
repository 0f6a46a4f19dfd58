"""The supervisor's own event lines (out.log, deploy.log): one format, written at once."""

from __future__ import annotations

import contextlib
import fcntl
import time
from pathlib import Path

from loon_supervisor.sinks.clean import strip_escapes


def event_lines(text: str) -> str:
    """The one format of supervisor event lines (out.log, deploy.log): a local timestamp,
    a space, the text; one stamped line per line of text, without terminal escape sequences
    (the build's coloured output keeps its colours on the terminal only)."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    return "".join(f"{stamp} {line}\n" for line in strip_escapes(text).splitlines() or [""])


class EventLog:
    """out.log: the supervisor's own timestamped events, one line each, written at once.

    Holds a shared ``flock`` on the file while open: log retention
    (:mod:`loon_supervisor.sinks.retention`) leaves a session alone while anyone writes it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
        with contextlib.suppress(OSError):
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_SH)
        self.failed: str | None = None

    def event(self, text: str) -> None:
        """Append; a failing disk disables out.log (``failed`` says why) instead of raising
        into a teardown."""
        if self._fh.closed or self.failed is not None:
            return
        try:
            self._fh.write(event_lines(text))
        except OSError as exc:
            self.failed = f"cannot write {self.path}: {exc.strerror or exc}"

    def close(self) -> None:
        try:
            self._fh.close()
        except OSError:
            pass
