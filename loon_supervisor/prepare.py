"""The steps every verb that deploys shares: validate config.json and write the env file.

Touches no Docker engine, so ``-e`` works on a machine without one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from loon_supervisor.config import LoonConfig, load_config
from loon_supervisor.config.rules import ensure_volume_dirs
from loon_supervisor.envfile import environment, secret_key, write_env_file
from loon_supervisor.errors import ConfigError, Problem
from loon_supervisor.paths import build_files_dir


@dataclass
class Prepared:
    config: LoonConfig
    config_path: Path
    env_path: Path
    env: dict[str, str]
    messages: list[str]


def prepare(config_file: Path, env_file: str = ".env") -> Prepared:
    if not env_file or "/" in env_file or env_file in (".", ".."):
        raise ConfigError([Problem("--env-file", f"'{env_file}' is not a plain file name",
                                   "give a name such as .env or .env.production; it is "
                                   "written to .build-files/")])
    config = load_config(config_file)
    messages, problems = ensure_volume_dirs(config.volume_dirs())
    if problems:
        raise ConfigError(problems, str(config_file))
    build_dir = build_files_dir()
    env = environment(config, secret_key(build_dir, config.deploymentSettings.containerName))
    env_path = write_env_file(build_dir / env_file, env)
    messages.append(f"wrote {env_path} (mode 0600)")
    return Prepared(config, config_file, env_path, env, messages)
