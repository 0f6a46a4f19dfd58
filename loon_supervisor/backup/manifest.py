"""A backup directory's index: every file with its size and sha256, written last, so a
backup without a manifest is an unfinished one and a file that changed since is found
before a restore touches anything.

Layout of ``backups/<UTC time>/``::

    manifest.json     this index (mode 0600)
    database.sql      mysqldump --single-transaction of the deployment's database (0600)
    env               the env file the deployment ran with (0600: it holds secrets)
    config.json       the configuration (0600: it holds secrets)
    data/...          the uploaded data (MinIO's or Django's media directory)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loon_supervisor.atomic import write_text_atomic
from loon_supervisor.errors import LoonError

MANIFEST = "manifest.json"
FORMAT = 1
CHUNK = 1 << 20


class BackupError(LoonError):
    """A backup that cannot be taken, found or trusted."""


@dataclass(frozen=True)
class Entry:
    path: str  # relative to the backup directory, '/'-separated
    size: int
    sha256: str
    mode: int = 0o600
    uid: int = -1
    gid: int = -1


@dataclass
class Manifest:
    created: str
    deployment: str
    image: str
    database: str
    data_dir: str | None  # the host directory the data came from (None: no data backed up)
    files: list[Entry] = field(default_factory=list)
    migrations: list[str] = field(default_factory=list)  # applied, as "app.name"
    note: str = ""  # e.g. why the data is not in it
    format: int = FORMAT

    @property
    def total_bytes(self) -> int:
        return sum(e.size for e in self.files)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        raw: dict[str, Any] = json.loads(text)
        files = [Entry(**e) for e in raw.pop("files", [])]
        return cls(**raw, files=files)


def new_name(now: datetime | None = None) -> str:
    """The directory name of a backup taken now: sortable UTC time, e.g. 20261204T150134Z."""
    return (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def entry_for(root: Path, path: Path) -> Entry:
    st = path.lstat()
    return Entry(path.relative_to(root).as_posix(), st.st_size, sha256_of(path),
                 st.st_mode & 0o7777, st.st_uid, st.st_gid)


def write_manifest(directory: Path, manifest: Manifest) -> None:
    write_text_atomic(directory / MANIFEST, manifest.to_json(), mode=0o600)


def read_manifest(directory: Path) -> Manifest:
    path = directory / MANIFEST
    try:
        return Manifest.from_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BackupError(f"{directory} has no {MANIFEST}: it is not a finished backup "
                          "(an interrupted `loon backup` leaves none); choose another one "
                          "from `loon backups`") from None
    except (OSError, ValueError, TypeError) as exc:
        raise BackupError(f"{path} cannot be read ({exc}); the backup is damaged: choose "
                          "another one from `loon backups`") from None


def verify(directory: Path, manifest: Manifest) -> list[str]:
    """What is wrong with the backup's files (empty: every size and checksum matches)."""
    wrong: list[str] = []
    for e in manifest.files:
        path = directory / e.path
        if not path.is_file():
            wrong.append(f"{e.path} is missing")
            continue
        size = path.stat().st_size
        if size != e.size:
            wrong.append(f"{e.path} has {size} bytes, the manifest says {e.size}")
        elif sha256_of(path) != e.sha256:
            wrong.append(f"{e.path} has another sha256 than the manifest says")
    return wrong


def backups_root(project: Path) -> Path:
    return project / "backups"


def list_backups(root: Path) -> list[Path]:
    """Finished backups (those with a manifest), oldest first."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and (p / MANIFEST).is_file())


def find_backup(root: Path, name: str) -> Path:
    """A backup named as `loon backups` lists it (or a path to one)."""
    candidates = [Path(name), root / name]
    if name == "latest" and (found := list_backups(root)):
        candidates.insert(0, found[-1])
    for c in candidates:
        if c.is_dir():
            return c
    known = ", ".join(p.name for p in list_backups(root)[-5:]) or "none yet"
    raise BackupError(f"no backup named {name!r} in {root} (newest: {known}); list them with "
                      "`loon backups`")


def prune(root: Path, keep: int) -> list[Path]:
    """Remove the oldest finished backups beyond ``keep``, and unfinished ones older than
    the newest finished one; the removed directories."""
    finished = list_backups(root)
    gone = finished[:-keep] if keep > 0 else finished
    if finished and root.is_dir():
        newest = finished[-1].name
        gone += [p for p in root.iterdir() if p.is_dir() and not (p / MANIFEST).exists()
                 and p.name < newest]
    for p in gone:
        shutil.rmtree(p, ignore_errors=True)
    return gone


def private_dir(path: Path) -> Path:
    """A directory only its owner can read (a backup holds secrets and data)."""
    path.mkdir(parents=True, exist_ok=False, mode=0o700)
    os.chmod(path, 0o700)
    return path
