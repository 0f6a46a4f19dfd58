"""``loon backup``: the running deployment's database, uploaded data, env file and config
into ``backups/<UTC time>/`` with a manifest of sizes and checksums (docs/upgrades.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from loon_supervisor.backup.manifest import backups_root
from loon_supervisor.backup.take import take_backup
from loon_supervisor.config import load_config
from loon_supervisor.engine.client import open_engine
from loon_supervisor.engine.endpoint import resolve_endpoint
from loon_supervisor.errors import LoonError
from loon_supervisor.lifecycle.running import running_container
from loon_supervisor.paths import build_files_dir, project_root


async def backup(config_file: Path, env_file: str = ".env") -> int:
    """Exit code 0 with the backup's directory printed; 1 when it could not be taken."""
    console = Console(soft_wrap=True, highlight=False)
    config = load_config(config_file)
    name = config.deploymentSettings.containerName

    def say(text: str) -> None:
        console.print(text, markup=False)

    async with open_engine() as engine:
        try:
            container = await running_container(engine, name)
        except LoonError:
            raise LoonError(f"deployment '{name}' is not running, and a backup dumps the "
                            "database through it: start it with `loon up -d`, then run "
                            "`loon backup` again") from None
        target = await take_backup(engine, container.id, container.image,
                                   config, config_file, build_files_dir() / env_file,
                                   backups_root(project_root()),
                                   remote=resolve_endpoint().remote, say=say)
    say(f"backup written: {target} (restore it with `loon restore {target.name}`)")
    return 0


@dataclass(frozen=True)
class BackupOptions:
    """``loon backup``: the deployment (config and env file) to back up."""

    config_file: Path
    env_file: str = ".env"


async def run(opts: BackupOptions) -> int:
    return await backup(opts.config_file, opts.env_file)
