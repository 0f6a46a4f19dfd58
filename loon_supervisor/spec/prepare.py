"""The steps every verb that deploys shares: validate config.json and write the env file.

Touches no Docker engine, so ``-e`` works on a machine without one. The config file is
read once; nothing is written until every check has passed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from loon_supervisor.config.jsonread import ConfigSource, read_source
from loon_supervisor.config.load import load
from loon_supervisor.config.model import LoonConfig
from loon_supervisor.config.volumes import check_volume_dirs, check_volume_paths
from loon_supervisor.engine.endpoint import resolve_endpoint
from loon_supervisor.errors import ConfigError, Problem
from loon_supervisor.paths import build_files_dir
from loon_supervisor.spec.envfile import (
    check_env_file_name,
    compose_warnings,
    environment,
    minio_known_absent,
    new_secret_key,
    read_secret_key,
    render,
    save_secret_key,
    write_env_file,
)


@dataclass
class Prepared:
    config: LoonConfig
    config_path: Path
    env_path: Path
    env: dict[str, str]
    messages: list[str]
    source: ConfigSource | None = None


def prepare(config_file: Path, env_file: str = ".env", create_dirs: bool = True,
            source: ConfigSource | None = None) -> Prepared:
    """Validate everything first, then write: on any problem nothing is written at all.

    Only ``up`` passes ``create_dirs``; ``validate`` says which directories ``up`` creates.
    """
    check_env_file_name(env_file)
    source = source or read_source(config_file)
    loaded = load(source)
    messages = [*loaded.warnings, *loaded.notes]
    engine = resolve_endpoint()
    dirs = loaded.config.volume_dirs()
    if engine.remote:
        # The volumes are directories on the engine's machine: nothing is checked or made
        # here; the engine creates missing bind sources when the container starts.
        create_dirs = False
        problems = check_volume_paths(dirs, local=False)
        dir_messages = [f"{d} ({path}) is a directory on the engine's machine "
                        f"({engine.describe()}); the engine creates it if missing"
                        for path, d in dirs]
    else:
        dir_messages, problems = check_volume_dirs(dirs, create=False)
    if problems:
        raise ConfigError(problems, str(config_file))
    build_dir = build_files_dir()
    name = loaded.config.deploymentSettings.containerName
    kept = read_secret_key(build_dir, name)
    absent = minio_known_absent(loaded.config)
    env = environment(loaded.config, kept or new_secret_key(), minio_in_image=not absent)
    render(env)  # raises before anything is written
    if (build_dir / env_file).is_dir():
        raise ConfigError([Problem("--env-file", f"{build_dir / env_file} is a directory",
                                   "remove it or choose another --env-file name")])
    if create_dirs:
        dir_messages, problems = check_volume_dirs(loaded.config.volume_dirs(), create=True)
        if problems:
            raise ConfigError(problems, str(config_file))
    messages.extend(dir_messages)
    if kept is None:
        env["SECRET_KEY"] = save_secret_key(build_dir, name, env["SECRET_KEY"])
    env_path = write_env_file(build_dir / env_file, env)
    messages.append(f"wrote {env_path} (mode 0600)")
    messages.extend(compose_warnings(env))
    if (ext := loaded.config.external_store) is not None:
        messages.append(f"minioSettings.endpointUrl: uploads go to the external S3-compatible "
                        f"store {ext.endpointUrl}, bucket {ext.media_bucket} (MinIO is not "
                        "built into the image; the env file says MINIO_ENABLED=true for Loon's "
                        "storage switch)")
    if absent:
        messages.append("deploymentSettings.minioSourceUrl is null: the image will have no "
                        "MinIO, so the env file says MINIO_ENABLED=false and holds no MinIO "
                        "credentials (docs/real-loon.md)")
    return Prepared(loaded.config, config_file, env_path, env, messages, source)
