"""``loon scale celery=N``: the Celery workers of a swarm deployment."""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Console

from loon_supervisor.engine import swarm as sv
from loon_supervisor.engine.client import open_engine
from loon_supervisor.errors import ConfigError, EngineError, Problem


@dataclass(frozen=True)
class ScaleOptions:
    """``loon scale``: the deployment and ``SERVICE=N`` (only celery scales)."""

    name: str
    spec: str


def parse_scale(spec: str) -> tuple[str, int]:
    """``celery=3`` -> ("celery", 3); only Celery scales (the core holds the volumes)."""
    role, _, count = spec.partition("=")
    if role != sv.CELERY or not count.isdigit():
        raise ConfigError([Problem("scale", f"'{spec}' is not SERVICE=N for a scalable service",
                                   "write celery=N, e.g. loon scale celery=4")])
    return role, int(count)


async def scale(name: str, spec: str) -> int:
    role, count = parse_scale(spec)
    svc = sv.service_name(name, role)
    async with open_engine() as engine:
        swarm = engine.swarm
        if not await swarm.active() or not any(
                s.name == svc for s in await swarm.ours(name)):
            raise EngineError(f"no swarm service {svc}: deploy with orchestrator swarm first")
        await swarm.scale(svc, count)
    Console().print(f"{svc}: scaled to {count} replicas")
    return 0


async def run(opts: ScaleOptions) -> int:
    return await scale(opts.name, opts.spec)
