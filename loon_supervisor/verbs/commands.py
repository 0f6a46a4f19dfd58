"""The verbs both front ends call: ``loon`` (typer) and ``build.py`` (the seed's flags).

Plain functions returning exit codes, importing nothing heavy up front, so ``build.py -e``
stays fast (typer's own parameter handling alone costs most of a second here).
"""

from __future__ import annotations

import sys
from pathlib import Path

from loon_supervisor.errors import LoonError


def _fail(exc: LoonError) -> int:
    print(str(exc) if exc.exit_code == 2 else f"error: {exc}", file=sys.stderr)
    return exc.exit_code


def validate(config_file: Path, env_file: str = ".env") -> int:
    """Validate and write the env file; reads the config once and creates no directories."""
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
    messages = fast_validate(config_file, source.data, env_file, build_dir)
    if messages is None:
        from loon_supervisor.spec.prepare import prepare

        try:
            prepared = prepare(config_file, env_file, create_dirs=False, source=source)
        except LoonError as exc:
            return _fail(exc)
        except OSError as exc:
            print(f"error: cannot write to {build_dir} ({exc.strerror or exc}); fix its "
                  "permissions", file=sys.stderr)
            return 1
        messages = prepared.messages
        write_stamp(source.data, env_file, build_dir, prepared.config.volume_dirs())
    for m in messages:
        print(m)
    print(f"{config_file} is valid")
    return 0


def show_config(config_file: Path) -> int:
    """Print the effective configuration (overrides applied, secrets masked); writes nothing."""
    import json

    from loon_supervisor.config.jsonread import read_source
    from loon_supervisor.config.load import load

    try:
        loaded = load(read_source(config_file))
    except LoonError as exc:
        return _fail(exc)
    for w in loaded.warnings:
        print(w, file=sys.stderr)
    data = loaded.config.model_dump(mode="json", by_alias=True, exclude_none=False)
    if data.get("$schema") is None:
        data.pop("$schema", None)
    print(json.dumps(data, indent=2))
    return 0


def up(config_file: Path, env_file: str = ".env", verbose: bool = False,
       detached: bool = False, replace: bool = False,
       only: tuple[str, ...] | None = None) -> int:
    from loon_supervisor.lifecycle.control import run_sync
    from loon_supervisor.verbs.up import UpOptions
    from loon_supervisor.verbs.up import up as do_up

    return run_sync(do_up, UpOptions(config_file, env_file, verbose, detached, replace,
                                     only=only))


def dev(config_file: Path, env_file: str = ".env", verbose: bool = False,
        detached: bool = False) -> int:
    """Only the backing services, and .build-files/dev.env for a host-run server."""
    from loon_supervisor.lifecycle.control import run_sync
    from loon_supervisor.verbs.dev import BACKING, write_dev_env
    from loon_supervisor.verbs.up import UpOptions
    from loon_supervisor.verbs.up import up as do_up

    return run_sync(do_up, UpOptions(config_file, env_file, verbose, detached, only=BACKING,
                                     on_prepared=write_dev_env))


def down(config_file: Path, name: str | None = None) -> int:
    from loon_supervisor.lifecycle.control import run_sync
    from loon_supervisor.verbs.down import down as do_down

    return run_sync(do_down, config_file, name)
