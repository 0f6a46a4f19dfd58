"""``loon doctor``: check a running deployment end to end (the checks live in
:mod:`loon_supervisor.doctor`)."""

from __future__ import annotations

from pathlib import Path


def main(config_file: Path, env_file: str = ".env", json_out: bool = False) -> int:
    from loon_supervisor.doctor import run_doctor
    from loon_supervisor.verbs.dispatch import run_sync

    return run_sync(run_doctor, config_file, env_file, json_out)
