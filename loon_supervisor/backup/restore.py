"""Putting a backup back (``loon restore``): checksums first — a damaged backup refuses
with the reason before anything is stopped — then the deployment is stopped, the data put
back while no container runs, the container started with MariaDB alone (so Loon's server
cannot touch the database meanwhile), the database loaded, and the whole deployment started
again."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio

from loon_supervisor.backup import database
from loon_supervisor.backup.datafiles import restore_tree
from loon_supervisor.backup.manifest import BackupError, Manifest, read_manifest, verify
from loon_supervisor.backup.take import DATA
from loon_supervisor.config.model import LoonConfig

DB_READY_TIMEOUT = 120.0


def checked(directory: Path, config: LoonConfig) -> Manifest:
    """The backup's manifest once every file matches it and it fits this configuration;
    otherwise a BackupError saying what is wrong (nothing has been changed)."""
    manifest = read_manifest(directory)
    wrong = verify(directory, manifest)
    if wrong:
        more = f" (and {len(wrong) - 3} more)" if len(wrong) > 3 else ""
        raise BackupError(f"backup {directory.name} is damaged: {'; '.join(wrong[:3])}{more}; "
                          "nothing was changed: restore another one from `loon backups`")
    if not any(e.path == "database.sql" for e in manifest.files):
        raise BackupError(f"backup {directory.name} holds no database.sql; nothing was changed")
    if manifest.data_dir is not None and (config.minio is None
                                          or config.minio.sourceVolumeLocation is None):
        raise BackupError(f"backup {directory.name} holds uploaded data but this configuration "
                          "has no minioSettings.sourceVolumeLocation to put it in (an external "
                          "store keeps its own); nothing was changed")
    return manifest


async def wait_for_database(engine: database.ExecEngine, cid: str, config: LoonConfig,
                            timeout: float = DB_READY_TIMEOUT) -> None:
    """Until the application user can query its database (MariaDB starting up)."""
    last: Exception | None = None
    with anyio.move_on_after(timeout):
        while True:
            try:
                await database.query(engine, cid, config.mySqlSettings, "SELECT 1")
                return
            except BackupError as exc:
                last = exc
            await anyio.sleep(1)
    raise BackupError(f"MariaDB did not accept {config.mySqlSettings.databaseUser} within "
                      f"{timeout:.0f} s: {last}")


async def restore_into(engine: database.ExecEngine, directory: Path, manifest: Manifest,
                       config: LoonConfig, *, stop: Callable[[], Awaitable[None]],
                       start_database_only: Callable[[], Awaitable[str]],
                       start_all: Callable[[], Awaitable[None]],
                       say: Callable[[str], None], data: bool = True) -> None:
    """The restore itself, with the deployment's lifecycle handed in (the verb uses up and
    down; a rollback its own starts). ``start_database_only`` returns the id of a container
    running MariaDB alone. ``data=False`` puts back the database only (a rollback: files
    uploaded since stay)."""
    say(f"restore: stopping deployment {config.deploymentSettings.containerName}")
    await stop()
    if data and manifest.data_dir is not None and config.minio is not None \
            and config.minio.sourceVolumeLocation is not None:
        live = Path(config.minio.sourceVolumeLocation)
        copied = restore_tree(directory, manifest.files, DATA + "/", live)
        say(f"restore: data in {live} is the backup's again ({copied} files copied)")
    cid = await start_database_only()
    await wait_for_database(engine, cid, config)
    await database.load(engine, cid, config.mySqlSettings, directory / "database.sql")
    say(f"restore: database {config.mySqlSettings.databaseName} loaded from "
        f"{directory.name} ({len(manifest.migrations)} migrations applied in it)")
    await start_all()
