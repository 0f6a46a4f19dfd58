"""Host log retention: session directories under ``logs/`` and the fast path's staging copy.

Sessions are never rotated while written (the host copy holds every byte), so the disk is
bounded between sessions: when a session starts, the oldest sessions are pruned while more
than ``deploymentSettings.logSessionsKept`` remain, every other older session's ``*.log``
is compressed (``S.log`` -> ``S.log.gz``, written beside it and renamed, so a crash leaves
either file whole), then the oldest are pruned while ``logs/`` plus the staging copy use
more than ``logMaxMegabytes``. Never touched: the session being started, the ``latest`` one and
every session a deployment's state file names (a live logger writes it, or ``loon down``
still collects into it from the saved positions).

The staging copy ``.build-files/service-logs/<deployment>/`` is the container's log dir
bind-mounted (``logSource`` hostdir), only a staging area: a rotated ``S.log.N`` (N >= 2)
goes as soon as the saved position says every byte of it is in the session (the position
names it, by inode and size, among the files older than the one it is in); a follower
that fell behind, or a dead logger, still finds the generations it has not read
(streams/follow.py). A follower that keeps up leaves each service its current file and one
rotated one there (2 x 50 MB with the Loon images' rotation, instead of 4 x 50 MB).
"""

from __future__ import annotations

import fcntl
import gzip
import json
import os
import re
import shutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from loon_supervisor.sinks.session_pick import has_service_files
from loon_supervisor.streams.cursor import Position

WARN_FRACTION = 0.8  # status and doctor warn from here on
_SESSION = re.compile(r"^logs_(\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d)(?:_(\d+))?$")
_ROTATED = re.compile(r"^(?P<svc>.+)\.log\.(?P<n>\d+)$")


@dataclass(frozen=True)
class Limits:
    """``deploymentSettings.logSessionsKept`` and ``logMaxMegabytes`` (in bytes)."""

    sessions: int = 20
    max_bytes: int = 1024 << 20

    @classmethod
    def from_settings(cls, settings: Mapping[str, object]) -> Limits:
        """From a (possibly unvalidated) deploymentSettings mapping; defaults where a value
        is missing or not a positive integer (``status`` reads the config leniently)."""
        def number(key: str, default: int) -> int:
            value = settings.get(key)
            ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
            return value if ok else default  # type: ignore[return-value]

        return cls(number("logSessionsKept", cls.sessions),
                   number("logMaxMegabytes", cls.max_bytes >> 20) << 20)


@dataclass
class Outcome:
    """What one pass did; ``usage`` is the bytes left (sessions plus staging)."""

    compressed: list[Path] = field(default_factory=list)
    pruned: list[Path] = field(default_factory=list)
    staging_removed: list[Path] = field(default_factory=list)
    usage: int = 0
    problems: list[str] = field(default_factory=list)

    def lines(self, limits: Limits) -> list[str]:
        """Sentences for out.log; empty when nothing happened and nothing is wrong."""
        out: list[str] = []
        if self.compressed or self.pruned:
            out.append(f"log retention: compressed {len(self.compressed)} file(s), pruned "
                       f"{len(self.pruned)} old session(s)"
                       + (f" ({', '.join(p.name for p in self.pruned)})" if self.pruned
                          else "")
                       + f"; host logs now use {human(self.usage)} of {human(limits.max_bytes)}")
        if self.usage > limits.max_bytes:
            out.append(f"warning: host logs use {human(self.usage)}, over "
                       f"deploymentSettings.logMaxMegabytes ({human(limits.max_bytes)}); what "
                       "is left is the current sessions, which are never pruned: stop and "
                       "start the deployment to begin a new session, or raise the limit")
        out.extend(f"log retention: {p}" for p in self.problems)
        return out


def human(n: int) -> str:
    """Bytes in the unit an operator reads at a glance."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.1f} {unit}"
    return f"{n} B"


def sessions(logs_root: Path) -> list[Path]:
    """Session directories, oldest first (by their stamp, then their same-second number)."""
    found: list[tuple[str, int, Path]] = []
    try:
        entries = list(logs_root.iterdir())
    except OSError:
        return []
    for p in entries:
        m = _SESSION.match(p.name)
        if m and p.is_dir() and not p.is_symlink():
            found.append((m.group(1), int(m.group(2) or 1), p))
    return [p for _, _, p in sorted(found)]


def tree_bytes(path: Path) -> int:
    """Bytes of the regular files under ``path`` (0 when it does not exist)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            total += st.st_size
    return total


def usage(logs_root: Path, build_files: Path) -> int:
    """Bytes the host logs use: every session plus the fast path's staging copy."""
    return sum(tree_bytes(s) for s in sessions(logs_root)) + tree_bytes(staging_root(build_files))


def sessions_in_use(build_files: Path) -> set[Path]:
    """Every session a deployment's state file names (``state.<name>.json``)."""
    used: set[Path] = set()
    for path in build_files.glob("state.*.json"):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and isinstance(data.get("session"), str):
            used.add(Path(data["session"]).resolve())
    return used


def compress_session(session: Path) -> list[Path]:
    """gzip each ``*.log`` of a finished session; the ``.gz`` files made. Level 1: a
    session start waits for it, and on access logs level 1 kept 12 % of the bytes at about
    6x the speed of level 9's 9 % (zlib, one CPU)."""
    made: list[Path] = []
    for tmp in session.glob("*.log.gz.tmp"):  # an interrupted earlier pass
        tmp.unlink(missing_ok=True)
    for log in sorted(session.glob("*.log")):
        if not log.is_file() or log.is_symlink():
            continue
        gz = log.with_name(log.name + ".gz")
        if gz.exists():  # renamed whole, then interrupted before the unlink
            log.unlink()
            continue
        tmp = gz.with_name(gz.name + ".tmp")
        with open(log, "rb") as src, open(tmp, "wb") as raw:
            with gzip.GzipFile(filename=log.name, mode="wb", fileobj=raw, compresslevel=1,
                               mtime=int(log.stat().st_mtime)) as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, gz)
        log.unlink()
        made.append(gz)
    return made


def staging_root(build_files: Path) -> Path:
    """The fast path's staging copy of every deployment of the project."""
    return build_files / "service-logs"


def written_now(session: Path) -> bool:
    """Does a live process write this session? Each writer holds a shared lock on its
    ``out.log`` (:class:`~loon_supervisor.sinks.session.EventLog`), dropped by the kernel
    when it dies."""
    try:
        fd = os.open(session / "out.log", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def apply(logs_root: Path, build_files: Path, limits: Limits,
          keep: Iterable[Path] = ()) -> Outcome:
    """One retention pass: prune the oldest sessions beyond the count, gzip the other
    finished ones, then prune the oldest while over the byte limit.

    :param keep: sessions never touched (the caller's current one) besides ``latest``,
        those a state file names, those a live process writes and the newest with service
        logs (``loon logs`` shows it when a run stopped before following anything).
    """
    out = Outcome()
    protected = {p.resolve() for p in keep}
    protected |= sessions_in_use(build_files)
    latest = logs_root / "latest"
    if latest.is_symlink():
        protected.add(latest.resolve())
    all_sessions = sessions(logs_root)
    protected |= {s.resolve() for s in all_sessions if written_now(s)}
    for s in reversed(all_sessions):  # what `loon logs` falls back to stays readable
        if has_service_files(s):
            protected.add(s.resolve())
            break
    left = [s for s in all_sessions if s.resolve() not in protected]  # oldest first
    excess = len(all_sessions) - limits.sessions
    while excess > 0 and left:  # by count first: nothing is compressed only to go
        if _remove(left.pop(0), out):
            excess -= 1
    for s in left:
        try:
            out.compressed += compress_session(s)
        except OSError as exc:
            out.problems.append(f"cannot compress {s}: {exc}")
    total = usage(logs_root, build_files)
    while total > limits.max_bytes and left:
        s = left.pop(0)
        size = tree_bytes(s)
        if _remove(s, out):
            total -= size
    out.usage = total
    return out


def _remove(session: Path, out: Outcome) -> bool:
    shutil.rmtree(session, ignore_errors=True)
    if session.exists():
        out.problems.append(f"cannot remove {session}; remove it yourself")
        return False
    out.pruned.append(session)
    return True


def prune_staging(host_dir: Path, positions: Mapping[str, Position] | None = None
                  ) -> list[Path]:
    """Remove the rotated files ``S.log.N`` (N >= 2) of one deployment's staging dir whose
    bytes are all in the session: ``positions[S]`` names the file (inode and size) among
    those older than the one it stands in. Without positions nothing is removed."""
    removed: list[Path] = []
    try:
        entries = list(host_dir.iterdir())
    except OSError:
        return removed
    for p in entries:
        m = _ROTATED.match(p.name)
        if not m or int(m.group("n")) < 2 or not p.is_file():
            continue
        pos = (positions or {}).get(m.group("svc"))
        try:
            st = p.stat()
        except OSError:
            continue
        if pos is None or not any(k.inode == st.st_ino and k.size == st.st_size
                                  for k in pos.older):
            continue
        try:
            p.unlink()
        except OSError:
            continue
        removed.append(p)
    return removed


class StagingPruner:
    """Called with each save of the positions (at most once a second, and at each switch to
    a rotated file's successor): one directory listing, the rotated files removed."""

    def __init__(self, host_dir: Path | None) -> None:
        self.host_dir = host_dir

    def __call__(self, positions: Mapping[str, Position]) -> None:
        if self.host_dir is not None:
            prune_staging(self.host_dir, positions)


def limits_for(config_file: Path | None = None) -> Limits:
    """The limits of the project's config, read leniently (``status`` and ``attach`` must
    work with a broken config): defaults where a value is missing or wrong."""
    from loon_supervisor.lifecycle.identity import _lenient_settings
    from loon_supervisor.paths import default_config

    return Limits.from_settings(_lenient_settings(config_file or default_config()))


def run_pass(logs_root: Path, build_files: Path, limits: Limits, current: Path,
             say: Callable[[str], None], log_only: Callable[[str], None]) -> Outcome:
    """A retention pass at a session's start: routine news to out.log, warnings to both."""
    outcome = apply(logs_root, build_files, limits, keep=[current])
    for line in outcome.lines(limits):
        (say if line.startswith("warning") else log_only)(line)
    return outcome


@dataclass(frozen=True)
class Usage:
    """What ``loon status`` and ``loon doctor`` show of the host logs."""

    used: int
    sessions: int
    limits: Limits

    @property
    def near_limit(self) -> bool:
        return self.used >= WARN_FRACTION * self.limits.max_bytes

    def summary(self) -> str:
        return (f"{human(self.used)} of {human(self.limits.max_bytes)} "
                f"(deploymentSettings.logMaxMegabytes) in {self.sessions} session(s), "
                f"{self.limits.sessions} kept")

    def warning(self) -> str | None:
        """One sentence when the usage is at 80 % of the limit or above; else None."""
        if not self.near_limit:
            return None
        pct = 100 * self.used // max(self.limits.max_bytes, 1)
        return (f"host logs use {pct} % of deploymentSettings.logMaxMegabytes: the next "
                "session start prunes the oldest sessions (the current ones are never "
                "pruned; a session that runs for weeks keeps growing): raise the limit or "
                "start a new session with `loon down` and `loon up -d`")


def measure(logs_root: Path, build_files: Path, limits: Limits) -> Usage:
    """The host logs' usage now."""
    return Usage(usage(logs_root, build_files), len(sessions(logs_root)), limits)
