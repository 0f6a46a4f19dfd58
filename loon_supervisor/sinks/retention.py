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

The staging copy is also bounded by bytes, like the sessions: it may use a quarter of
``logMaxMegabytes`` (:attr:`Limits.staging_bytes`). While the project's staging dirs use
more, the pruner also removes the read ``S.log.1`` files, oldest first. It never removes
a live file (the service writes it) or a rotated file the session has not read yet: the
exactly-once rule of streams/follow.py lets a rotated file go only once the saved position
names it among the files already read. What is left over the share is unread bytes and live
files; ``loon status`` and ``loon doctor`` show the staging copy's usage and warn.
"""

from __future__ import annotations

import fcntl
import gzip
import json
import os
import re
import shutil
import stat
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from loon_supervisor.sinks.session_pick import has_service_files
from loon_supervisor.streams.cursor import Position

WARN_FRACTION = 0.8  # status and doctor warn from here on
STAGING_SHARE = 4  # the staging copy may use 1/STAGING_SHARE of logMaxMegabytes
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

    @property
    def staging_bytes(self) -> int:
        """What the fast path's staging copy may use: a quarter of ``max_bytes``."""
        return self.max_bytes // STAGING_SHARE


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


def prune_staging(host_dir: Path, positions: Mapping[str, Position] | None = None,
                  limit: int | None = None) -> list[Path]:
    """Remove the rotated files ``S.log.N`` of one deployment's staging dir whose bytes are
    all in the session: ``positions[S]`` names the file (inode, size and ending) among
    those older than the one it stands in, and the file is older than that one on disk too
    (a higher N). ``N >= 2`` always goes once read; ``S.log.1`` (kept readable in the
    container) too, oldest first, while the project's staging copy (every deployment's dir
    beside ``host_dir``) uses more than ``limit`` bytes. Without positions nothing is
    removed.

    The on-disk order matters because inode numbers are reused at once: the file a
    rotation creates right after deleting the oldest generation often gets the deleted
    file's inode (and, with fixed-size records, its size and ending), and that new, unread
    file was taken for the known one and deleted (issue 23, 40 rotations a second). A
    service whose position's own file is not in the directory keeps all its files."""
    removed: list[Path] = []
    try:
        entries = list(host_dir.iterdir())
    except OSError:
        return removed
    found: dict[str, list[tuple[int, Path, os.stat_result]]] = {}
    for p in entries:
        m = _ROTATED.match(p.name)
        if not m and not p.name.endswith(".log"):
            continue
        svc, n = (m.group("svc"), int(m.group("n"))) if m else (p.name[:-4], 0)
        try:
            st = p.stat()
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            found.setdefault(svc, []).append((n, p, st))
    spare: list[tuple[float, Path, int]] = []  # read S.log.1 files: (mtime, path, size)
    for svc, files in found.items():
        pos = (positions or {}).get(svc)
        if pos is None or pos.inode is None:
            continue
        own = [n for n, _, st in files if st.st_ino == pos.inode]
        if not own:
            continue
        for n, p, st in files:
            if n < 1 or n <= own[0]:
                continue
            if not any(k.inode == st.st_ino and k.size == st.st_size
                       and (not k.tail or _ends_with(p, k.tail)) for k in pos.older):
                continue  # not read yet (or not known to be): it stays
            if n == 1:
                spare.append((st.st_mtime, p, st.st_size))
            elif _unlink(p, st.st_ino):
                removed.append(p)
    if limit is None or not spare:
        return removed
    total = tree_bytes(host_dir.parent)
    for _mtime, p, size in sorted(spare, key=lambda t: t[0]):
        if total <= limit:
            break
        if _unlink(p, None):
            removed.append(p)
            total -= size
    return removed


def _unlink(path: Path, inode: int | None) -> bool:
    """Remove ``path`` (if it still names ``inode``: renamed on meanwhile, it is another
    file now)."""
    try:
        if inode is not None and path.stat().st_ino != inode:
            return False
        path.unlink()
    except OSError:
        return False
    return True


def _ends_with(path: Path, tail: bytes) -> bool:
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, 2)
            return size >= len(tail) and os.pread(fh.fileno(), len(tail),
                                                  size - len(tail)) == tail
    except OSError:
        return False


class StagingPruner:
    """Called with each save of the positions (at most once a second, and at each switch to
    a rotated file's successor): one directory listing, the rotated files removed; the
    staging copy's total is measured only when a read ``S.log.1`` could go."""

    def __init__(self, host_dir: Path | None, limits: Limits | None = None) -> None:
        self.host_dir = host_dir
        self.limit = (limits or Limits()).staging_bytes

    def __call__(self, positions: Mapping[str, Position]) -> None:
        if self.host_dir is not None:
            prune_staging(self.host_dir, positions, self.limit)


def limits_for(config_file: Path | None = None) -> Limits:
    """The limits of the project's config, read leniently (``status`` and ``attach`` must
    work with a broken config): defaults where a value is missing or wrong."""
    from loon_supervisor.lifecycle.identity import _lenient_settings
    from loon_supervisor.paths import default_config

    return Limits.from_settings(_lenient_settings(config_file or default_config()))


def recorded_limits(max_bytes: int | None) -> Limits:
    """A follower's limits: the byte limit ``up`` recorded in the state file (its config
    may be another file than the project's config.json), else the project's config."""
    found = limits_for()
    return found if max_bytes is None else Limits(found.sessions, max_bytes)


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
    staging: int = 0  # of ``used``: the fast path's staging copy

    @property
    def near_limit(self) -> bool:
        return self.used >= WARN_FRACTION * self.limits.max_bytes

    @property
    def staging_over(self) -> bool:
        return self.staging > self.limits.staging_bytes

    def summary(self) -> str:
        return (f"{human(self.used)} of {human(self.limits.max_bytes)} "
                f"(deploymentSettings.logMaxMegabytes) in {self.sessions} session(s), "
                f"{self.limits.sessions} kept; staging copy {human(self.staging)} of "
                f"{human(self.limits.staging_bytes)}")

    def warning(self) -> str | None:
        """One sentence when the usage is at 80 % of the limit or above, or the staging
        copy is over its share; else None."""
        said: list[str] = []
        if self.near_limit:
            pct = 100 * self.used // max(self.limits.max_bytes, 1)
            said.append(f"host logs use {pct} % of deploymentSettings.logMaxMegabytes: the "
                        "next session start prunes the oldest sessions (the current ones are "
                        "never pruned; a session that runs for weeks keeps growing): raise "
                        "the limit or start a new session with `loon down` and `loon up -d`")
        if self.staging_over:
            said.append(f"the fast path's staging copy (.build-files/service-logs) uses "
                        f"{human(self.staging)}, over its share (a quarter of "
                        f"logMaxMegabytes, {human(self.limits.staging_bytes)}): what is "
                        "left are the services' live files and rotated files the logger has "
                        "not read yet, which are never removed: check that a logger follows "
                        "(`loon status`), or raise the limit")
        return "; ".join(said) or None


def measure(logs_root: Path, build_files: Path, limits: Limits) -> Usage:
    """The host logs' usage now."""
    return Usage(usage(logs_root, build_files), len(sessions(logs_root)), limits,
                 tree_bytes(staging_root(build_files)))
