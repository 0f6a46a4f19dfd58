"""Taking a backup of a running deployment (``loon backup``, and a redeploy right before
its swap): the database dump first (one consistent snapshot), then the uploaded data, the
env file and the config, then the manifest — written last, so a backup without one is
known to be unfinished."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from loon_supervisor.backup import database
from loon_supervisor.backup.datafiles import link_or_copy_tree
from loon_supervisor.backup.manifest import (
    BackupError,
    Manifest,
    entry_for,
    new_name,
    private_dir,
    prune,
    write_manifest,
)
from loon_supervisor.config.model import LoonConfig

DATA = "data"


async def take_backup(engine: database.ExecEngine, cid: str, image: str, config: LoonConfig,
                      config_file: Path, env_path: Path, root: Path, *, remote: bool,
                      say: Callable[[str], None]) -> Path:
    """``root/<UTC time>/`` holding the whole backup; older ones beyond keepBackups are
    removed afterwards. On any failure the partial directory is removed."""
    d = config.deploymentSettings
    root.mkdir(parents=True, exist_ok=True)
    target = private_dir(root / new_name())
    try:
        m = config.mySqlSettings
        migrations = await database.applied_migrations(engine, cid, m)
        size = await database.dump(engine, cid, m, target / "database.sql")
        say(f"backup: database {m.databaseName} dumped ({size} bytes, "
            f"{len(migrations)} migrations applied)")
        files = [entry_for(target, target / "database.sql")]
        data_dir, note = _data_source(config, remote)
        if data_dir is not None:
            entries, how = link_or_copy_tree(Path(data_dir), target / DATA, target)
            files += entries
            say(f"backup: {len(entries)} data files from {data_dir} ({how})")
        elif note:
            say(f"backup: {note}")
        for source, name in ((env_path, "env"), (config_file, "config.json")):
            if source.is_file():
                shutil.copyfile(source, target / name)
                (target / name).chmod(0o600)
                files.append(entry_for(target, target / name))
        write_manifest(target, Manifest(
            created=target.name, deployment=d.containerName, image=image,
            database=m.databaseName, data_dir=data_dir, files=files, migrations=migrations,
            note=note))
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    for gone in prune(root, d.keepBackups):
        say(f"backup: removed {gone.name} (deploymentSettings.keepBackups is {d.keepBackups})")
    return target


def _data_source(config: LoonConfig, remote: bool) -> tuple[str | None, str]:
    """The host directory with the uploads, or None and why there is none to back up."""
    if config.minio is None:
        return None, "no uploaded data to back up (the local environment has none)"
    if config.minio.external or config.minio.sourceVolumeLocation is None:
        return None, ("the uploaded data is in the external S3-compatible store "
                      f"({config.minio.endpointUrl}, bucket {config.minio.media_bucket}); "
                      "back it up there")
    if config.minio.volumeType == "nfs":
        return None, ("the uploaded data is on the NFS server "
                      f"({config.minio.ipAddress}:{config.minio.sourceVolumeLocation}); "
                      "back it up there")
    if remote:
        return None, ("the uploaded data stays on the engine's machine "
                      f"({config.minio.sourceVolumeLocation}); back it up there")
    directory = config.minio.sourceVolumeLocation
    if not Path(directory).is_dir():
        raise BackupError(f"the data directory {directory} (minioSettings."
                          "sourceVolumeLocation) does not exist; check the config")
    return directory, ""
