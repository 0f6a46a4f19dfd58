"""``loon restore BACKUP``: verify, stop, put the data and the database back, start again
(docs/upgrades.md). A damaged backup changes nothing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from loon_supervisor.backup.manifest import BackupError, backups_root, find_backup
from loon_supervisor.backup.restore import checked, restore_into
from loon_supervisor.config import load_config
from loon_supervisor.engine.client import open_engine
from loon_supervisor.lifecycle.running import find_running, running_container
from loon_supervisor.paths import project_root


async def restore(config_file: Path, env_file: str, backup: str) -> int:
    from loon_supervisor.verbs.down import down
    from loon_supervisor.verbs.up import UpRun, up

    console = Console(soft_wrap=True, highlight=False)
    config = load_config(config_file)
    name = config.deploymentSettings.containerName
    directory = find_backup(backups_root(project_root()), backup)
    manifest = checked(directory, config)

    def say(text: str) -> None:
        console.print(text, markup=False)

    say(f"backup {directory.name} verified: {len(manifest.files)} files, "
        f"{manifest.total_bytes} bytes, every sha256 matches")

    async def stop() -> None:
        if await down(name) != 0:
            raise BackupError(f"deployment '{name}' did not stop; nothing was restored")

    image = await version_to_run(name, config.deploymentSettings.imageTag)

    async def start(only: tuple[str, ...] | None, what: str) -> None:
        code = await up(UpRun(config_file, env_file, detached=True, replace=True,
                                  only=only, image=image))
        if code != 0:
            raise BackupError(f"starting {what} failed (exit code {code}); see the "
                              "session's out.log under logs/")

    async with open_engine() as engine:
        async def database_only() -> str:
            await start(("mysql",), "MariaDB alone")
            return (await running_container(engine, name)).id

        try:
            await restore_into(engine, directory, manifest, config, stop=stop,
                               start_database_only=database_only,
                               start_all=lambda: start(None, "the deployment"),
                               say=say)
        except BackupError as exc:
            raise BackupError(f"{exc}. The restore did not finish: fix that and run "
                              f"`loon restore {directory.name}` again") from None
    say(f"restored {directory.name}: deployment '{name}' runs again")
    return 0


async def version_to_run(name: str, image_tag: str) -> str:
    """The image the deployment runs (else its current version, else imageTag): a restore
    starts that again as it is, without building a new version."""
    from loon_supervisor import versions

    async with open_engine() as engine:
        running = await find_running(engine, name)
    if running is not None and running.image:
        return running.image
    now = versions.current(name)
    return now.tag if now is not None else image_tag


@dataclass(frozen=True)
class RestoreOptions:
    """``loon restore``: the deployment and the backup to put back."""

    config_file: Path
    env_file: str
    backup: str


async def run(opts: RestoreOptions) -> int:
    return await restore(opts.config_file, opts.env_file, opts.backup)
