"""``loon rollback [VERSION]``: back to an earlier version by hand (docs/upgrades.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RollbackOptions:
    """``loon rollback``: the deployment and the version to go back to (default: the previous one)."""

    config_file: Path
    env_file: str = ".env"
    version: str | None = None


async def run(opts: RollbackOptions) -> int:
    from loon_supervisor.upgrade.rollout import rollback

    return await rollback(opts.config_file, opts.env_file, opts.version)
