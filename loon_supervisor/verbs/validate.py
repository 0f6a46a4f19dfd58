"""``validate`` (``build.py -e``): check config.json and write the env file; touches no
engine. Imports nothing heavy up front, so ``-e`` stays fast (typer's own parameter handling
alone costs most of a second here)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from loon_supervisor.errors import LoonError
from loon_supervisor.errors import report as _fail


@dataclass(frozen=True)
class ValidateOptions:
    """``loon validate`` / ``build.py -e``: the config to check and the env file to write."""

    config_file: Path
    env_file: str = ".env"
    prepare_dev: bool = False


def run(opts: ValidateOptions) -> int:
    """Validate and write the env file; reads the config once and creates no directories.
    ``prepare_dev`` (``--prepare-dev``): also the Loon client's ``apps/client/.env``."""
    config_file, env_file, prepare_dev = opts.config_file, opts.env_file, opts.prepare_dev
    from loon_supervisor.config.jsonread import read_source
    from loon_supervisor.config.validation_cache import fast_validate, write_stamp
    from loon_supervisor.paths import build_files_dir
    from loon_supervisor.spec.envfile import check_env_file_name

    try:
        check_env_file_name(env_file)
        source = read_source(config_file)
    except LoonError as exc:
        return _fail(exc)
    build_dir = build_files_dir()
    messages = None if prepare_dev else fast_validate(config_file, source.data, env_file,
                                                      build_dir)
    if messages is None:
        from loon_supervisor.spec.prepare import prepare

        try:
            prepared = prepare(config_file, env_file, create_dirs=False, source=source)
        except LoonError as exc:
            return _fail(exc)
        except OSError as exc:
            from loon_supervisor.errors import from_os_error

            return _fail(from_os_error(exc))
        messages = prepared.messages
        if prepare_dev:
            from loon_supervisor.spec.client_env import write_client_dev_env

            try:
                path, hint = write_client_dev_env(prepared.config, config_file)
            except LoonError as exc:
                return _fail(exc)
            messages.extend([f"wrote {path}", hint])
        write_stamp(source.data, env_file, build_dir, prepared.config.volume_dirs())
    for m in messages:
        print(m)
    print(f"{config_file} is valid")
    return 0
