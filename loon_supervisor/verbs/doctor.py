"""``loon doctor``: check a running deployment end to end (the checks live in
:mod:`loon_supervisor.doctor`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DoctorOptions:
    """``loon doctor``: the config and env file of the deployment to check; ``json_out``: verdicts as JSON."""

    config_file: Path
    env_file: str = ".env"
    json_out: bool = False


async def run(opts: DoctorOptions) -> int:
    from loon_supervisor.doctor import run_doctor

    return await run_doctor(opts.config_file, opts.env_file, opts.json_out)
