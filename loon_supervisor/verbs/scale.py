"""``loon scale celery=N``: the Celery replicas of a swarm deployment."""

from __future__ import annotations


def main(name: str, spec: str) -> int:
    from loon_supervisor.swarm.verbs import scale
    from loon_supervisor.verbs.dispatch import run_sync

    return run_sync(scale, name, spec)
