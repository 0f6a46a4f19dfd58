"""One run's log directory: ``logs/logs_%Y-%m-%d_%H-%M-%S/`` with out.log and a ``latest`` link."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from datetime import datetime
from pathlib import Path

from loon_supervisor.errors import LoonError
from loon_supervisor.sinks.clean import strip_escapes


def new_session_dir(logs_root: Path) -> Path:
    logs_root.mkdir(parents=True, exist_ok=True)
    _check_latest(logs_root / "latest")  # before a session exists
    stamp = datetime.now().strftime("logs_%Y-%m-%d_%H-%M-%S")
    path = logs_root / stamp
    n = 1
    while path.exists():  # two runs in the same second
        n += 1
        path = logs_root / f"{stamp}_{n}"
    path.mkdir()
    point_latest(logs_root, path)
    return path


class LatestIsNotALink(LoonError):
    """``logs/latest`` is a real directory or file: replacing it would lose what it holds."""

    exit_code = 2


def _check_latest(link: Path) -> None:
    """:raises LatestIsNotALink: when ``link`` exists and is no symbolic link."""
    if not link.is_symlink() and link.exists():
        raise LatestIsNotALink(f"{link} is a {'directory' if link.is_dir() else 'file'}, not "
                               "the link to the newest session that loon keeps there; move it "
                               f"away (e.g. mv {link} {link}.old) and run this again")


def point_latest(logs_root: Path, session: Path) -> None:
    link = logs_root / "latest"
    _check_latest(link)
    tmp = logs_root / f".latest.{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(session.name)
    os.replace(tmp, link)


def latest_session(logs_root: Path) -> Path | None:
    link = logs_root / "latest"
    if link.exists():
        return link.resolve()
    dirs = sorted(p for p in logs_root.glob("logs_*") if p.is_dir())
    return dirs[-1] if dirs else None


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
