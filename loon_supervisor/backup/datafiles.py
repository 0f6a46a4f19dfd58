"""The uploaded data in and out of a backup.

Into a backup each file is hard-linked when the backup is on the same file system (instant
and takes no space), else copied. That is safe because neither store rewrites a file in
place: MinIO writes a new file and renames it over the old one, Django's file storage writes
new names (the stand-in deletes, then saves). The manifest's checksums would show it if a
file ever changed under the link. Out of a backup files are always copied, so a restored
deployment that writes its files can never alter the backup.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from pathlib import Path

from loon_supervisor.backup.manifest import Entry, entry_for


def link_or_copy_tree(source: Path, target: Path, base: Path) -> tuple[list[Entry], str]:
    """Every regular file under ``source`` into ``target``; their entries (relative to
    ``base``) and how they got there (``hard links``, ``copies`` or both)."""
    entries: list[Entry] = []
    how: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(source):
        dirnames.sort()
        rel = Path(dirpath).relative_to(source)
        (target / rel).mkdir(parents=True, exist_ok=True)
        for name in sorted(filenames):
            src, dst = Path(dirpath) / name, target / rel / name
            if not src.is_file() or src.is_symlink():
                continue
            try:
                os.link(src, dst)
                how.add("hard links")
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                    raise
                shutil.copy2(src, dst)
                how.add("copies")
            entries.append(entry_for(base, dst))
    return entries, " and ".join(sorted(how)) or "no files"


def restore_tree(backup: Path, entries: list[Entry], prefix: str, live: Path) -> int:
    """Make ``live`` hold exactly the backup's files under ``prefix`` (copied, with their
    modes and, when allowed, owners); files the backup lacks are removed. The number of
    files copied (those already identical are left alone). Directories stay: an empty one
    may be a MinIO bucket."""
    wanted = {e.path[len(prefix):]: e for e in entries if e.path.startswith(prefix)}
    live.mkdir(parents=True, exist_ok=True)
    for dirpath, _, filenames in os.walk(live):
        for name in filenames:
            path = Path(dirpath) / name
            if path.relative_to(live).as_posix() not in wanted:
                path.unlink()
    copied = 0
    for rel, e in sorted(wanted.items()):
        dst = live / rel
        if dst.is_file() and _same(dst, e):
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(f".{dst.name}.loon-restore")
        shutil.copyfile(backup / e.path, tmp)
        os.chmod(tmp, e.mode)
        if e.uid >= 0:
            with contextlib.suppress(PermissionError):
                os.chown(tmp, e.uid, e.gid)
        os.replace(tmp, dst)
        copied += 1
    return copied


def _same(path: Path, e: Entry) -> bool:
    from loon_supervisor.backup.manifest import sha256_of

    return path.stat().st_size == e.size and sha256_of(path) == e.sha256
