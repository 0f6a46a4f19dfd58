"""``loon rollback [VERSION]``: back to an earlier version by hand (docs/upgrades.md)."""

from __future__ import annotations

from pathlib import Path


def main(config_file: Path, env_file: str = ".env", version: str | None = None) -> int:
    from loon_supervisor.upgrade.rollout import rollback
    from loon_supervisor.verbs.dispatch import run_sync

    return run_sync(rollback, config_file, env_file, version)
