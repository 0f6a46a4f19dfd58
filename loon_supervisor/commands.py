"""The verbs both front ends call: ``loon`` (typer) and ``build.py`` (the seed's flags).

Plain functions returning exit codes, importing nothing heavy up front, so ``build.py -e``
stays fast (typer's own parameter handling alone costs most of a second here).
"""

from __future__ import annotations

import sys
from pathlib import Path

from loon_supervisor.errors import LoonError


def validate(config_file: Path, env_file: str = ".env") -> int:
    from loon_supervisor.paths import build_files_dir
    from loon_supervisor.validation_cache import fast_validate, write_stamp

    build_dir = build_files_dir()
    messages = fast_validate(config_file, env_file, build_dir) if "/" not in env_file else None
    if messages is None:
        from loon_supervisor.prepare import prepare

        try:
            prepared = prepare(config_file, env_file)
        except LoonError as exc:
            print(str(exc) if exc.exit_code == 2 else f"error: {exc}", file=sys.stderr)
            return exc.exit_code
        messages = prepared.messages
        write_stamp(config_file, env_file, build_dir, prepared.config.volume_dirs())
    for m in messages:
        print(m)
    print(f"{config_file} is valid")
    return 0


def up(config_file: Path, env_file: str = ".env", verbose: bool = False,
       detached: bool = False, replace: bool = False) -> int:
    from loon_supervisor.run import run_sync
    from loon_supervisor.supervisor import UpOptions
    from loon_supervisor.supervisor import up as do_up

    return run_sync(do_up, UpOptions(config_file, env_file, verbose, detached, replace))


def down(config_file: Path, name: str | None = None) -> int:
    from loon_supervisor.down import down as do_down
    from loon_supervisor.run import run_sync

    return run_sync(do_down, config_file, name)
