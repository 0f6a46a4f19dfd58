"""The engine-free parts of backups: the manifest's checks, the data copied in and out, the
pruning, and that the database password only ever travels in an exec's environment."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from pydantic import SecretStr

from loon_supervisor.backup import database
from loon_supervisor.backup.datafiles import link_or_copy_tree, restore_tree
from loon_supervisor.backup.manifest import (
    BackupError,
    Manifest,
    find_backup,
    list_backups,
    prune,
    read_manifest,
    verify,
    write_manifest,
)
from loon_supervisor.config.model import MySqlSettings


def _tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def _backup(tmp_path: Path, files: dict[str, bytes]) -> tuple[Path, Manifest]:
    live = _tree(tmp_path / "live", files)
    backup = tmp_path / "backups" / "20260101T000000Z"
    backup.mkdir(parents=True)
    entries, how = link_or_copy_tree(live, backup / "data", backup)
    assert how == "hard links"  # one file system under tmp_path
    m = Manifest("20260101T000000Z", "loon", "loon:latest", "loon", str(live), entries)
    write_manifest(backup, m)
    return backup, m


def test_a_backup_verifies_and_a_changed_or_missing_file_is_named(tmp_path: Path) -> None:
    backup, m = _backup(tmp_path, {"a.txt": b"alpha", "bucket/b/c.bin": b"\x00" * 100})
    assert verify(backup, read_manifest(backup)) == []
    (backup / "data/a.txt").unlink()
    (backup / "data/a.txt").write_bytes(b"alphA")  # same size, other content
    (backup / "data/bucket/b/c.bin").unlink()
    assert verify(backup, m) == ["data/a.txt has another sha256 than the manifest says",
                                 "data/bucket/b/c.bin is missing"]


def test_restore_makes_the_live_directory_the_backups_again(tmp_path: Path) -> None:
    backup, m = _backup(tmp_path, {"a.txt": b"alpha", "sub/b.txt": b"beta"})
    live = tmp_path / "live"
    (live / "a.txt").unlink()  # replaced (new inode), as the stores do
    (live / "a.txt").write_bytes(b"changed")
    (live / "sub/new.txt").write_bytes(b"added later")
    (live / "emptybucket").mkdir()
    assert restore_tree(backup, m.files, "data/", live) == 1
    got = {p.relative_to(live).as_posix(): p.read_bytes() for p in live.rglob("*")
           if p.is_file()}
    assert got == {"a.txt": b"alpha", "sub/b.txt": b"beta"}
    assert (live / "emptybucket").is_dir()
    # a restored file is a copy: writing it in place cannot alter the backup
    assert os.stat(live / "a.txt").st_ino != os.stat(backup / "data/a.txt").st_ino
    assert verify(backup, m) == []


def test_prune_keeps_the_newest_and_drops_older_unfinished_ones(tmp_path: Path) -> None:
    root = tmp_path / "backups"
    for name in ("20260101T000000Z", "20260102T000000Z", "20260103T000000Z"):
        (root / name).mkdir(parents=True)
        write_manifest(root / name, Manifest(name, "loon", "", "loon", None))
    (root / "20260101T120000Z").mkdir()  # interrupted: no manifest
    gone = prune(root, 2)
    assert sorted(p.name for p in gone) == ["20260101T000000Z", "20260101T120000Z"]
    assert [p.name for p in list_backups(root)] == ["20260102T000000Z", "20260103T000000Z"]
    assert find_backup(root, "latest").name == "20260103T000000Z"
    with pytest.raises(BackupError, match="no backup named 'nope'.*20260103T000000Z"):
        find_backup(root, "nope")
    with pytest.raises(BackupError, match="not a finished backup"):
        read_manifest(tmp_path)


class _Engine:
    """Records each exec: its command, environment and stdin."""

    def __init__(self, tables: list[list[str]]) -> None:
        self.tables = tables
        self.calls: list[tuple[list[str], dict[str, str] | None, bytes]] = []

    async def run_capture(self, cid: str, cmd: list[str], env: dict[str, str] | None = None
                          ) -> tuple[int, bytes]:
        self.calls.append((cmd, env, b""))
        return 0, "".join("\t".join(r) + "\n" for r in self.tables).encode()

    async def run_streaming(self, cid: str, cmd: list[str], env: dict[str, str],
                            workdir: str | None, on_output: Callable[[int, bytes], None]
                            ) -> int | None:
        self.calls.append((cmd, env, b""))
        on_output(1, b"-- dump\nCREATE TABLE t (x INT);\n")
        return 0

    async def run_feeding(self, cid: str, cmd: list[str], chunks: AsyncIterator[bytes],
                          env: dict[str, str] | None = None) -> tuple[int, bytes]:
        fed = b"".join([c async for c in chunks])
        self.calls.append((cmd, env, fed))
        return 0, b""


@pytest.mark.anyio
async def test_dump_and_load_keep_the_password_off_the_command_line(tmp_path: Path) -> None:
    m = MySqlSettings(databaseName="loon", databaseUser="user",
                      databasePassword=SecretStr("s3cret-pw"),
                      databaseRootPassword=SecretStr("r00t-pw"),
                      sourceVolumeLocation=str(tmp_path))
    engine = _Engine([["api_upload", "BASE TABLE"], ["a`view", "VIEW"]])
    assert await database.dump(engine, "cid", m, tmp_path / "database.sql") > 0
    assert oct((tmp_path / "database.sql").stat().st_mode & 0o777) == "0o600"
    await database.load(engine, "cid", m, tmp_path / "database.sql")
    dump_cmd = engine.calls[0][0]
    assert dump_cmd[0] == "mysqldump" and "--single-transaction" in dump_cmd
    fed = engine.calls[-1][2].decode()
    assert fed.index("DROP TABLE IF EXISTS `api_upload`;") < fed.index("CREATE TABLE t")
    assert "DROP VIEW IF EXISTS `a``view`;" in fed
    for cmd, env, _ in engine.calls:
        assert not any("s3cret" in a or "r00t" in a for a in cmd), cmd
        assert env == {"MYSQL_PWD": "s3cret-pw"}
