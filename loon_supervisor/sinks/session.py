"""One run's log directory: ``logs/logs_%Y-%m-%d_%H-%M-%S/`` with out.log and a ``latest`` link."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from rich.console import Console

from loon_supervisor.errors import LoonError
from loon_supervisor.sinks.events import EventLog, event_lines
from loon_supervisor.sinks.reporter import Reporter

__all__ = ["LOGGER_STDERR", "OUT_LOG", "EventLog", "Session", "event_lines", "latest_session",
           "new_session_dir", "point_latest"]


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


OUT_LOG = "out.log"
LOGGER_STDERR = "logger.stderr"


class Session:
    """One run's directory and its one event channel (out.log, and the terminal when the
    process has one): the file names live here, and lifecycle code speaks only through
    ``say``. Opened once per process that writes it; :meth:`close` on every path."""

    def __init__(self, path: Path, console: Console | None) -> None:
        self.path = path
        self.events: EventLog | None = EventLog(path / OUT_LOG)
        self.say = Reporter(self.events, console)

    @classmethod
    def terminal_only(cls, console: Console | None) -> Session:
        """No directory to write into (a container whose run recorded no session): events
        go to the terminal only, and nothing is collected."""
        session = cls.__new__(cls)
        session.path = Path(".")
        session.events = None
        session.say = Reporter(None, console)
        return session

    @classmethod
    def new(cls, logs_root: Path, console: Console | None) -> Session:
        """A fresh ``logs_<stamp>`` directory, ``latest`` pointing at it."""
        return cls(new_session_dir(logs_root), console)

    @property
    def out_log(self) -> Path:
        return self.path / OUT_LOG

    @property
    def logger_stderr(self) -> Path:
        """Where a background logger's own stderr goes (a crash before it could say why)."""
        return self.path / LOGGER_STDERR

    def log_file(self, stream: str) -> Path:
        """A followed stream's file: a service's, or ``container`` (the container's output)."""
        return self.path / f"{stream}.log"

    def close(self) -> None:
        if self.events is not None:
            self.events.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
