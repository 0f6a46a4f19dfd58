"""``loon scale`` and the swarm part of ``loon status``."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from loon_supervisor.engine import swarm as sv
from loon_supervisor.engine.client import open_engine
from loon_supervisor.errors import ConfigError, EngineError, Problem


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
                s["Spec"]["Name"] == svc for s in await swarm.ours(name)):
            raise EngineError(f"no swarm service {svc}: deploy with orchestrator swarm first")
        await swarm.scale(svc, count)
    Console().print(f"{svc}: scaled to {count} replicas")
    return 0


async def swarm_status(name: str, console: Console) -> int | None:
    """A table of tasks per service with node and state; None when not a swarm deployment.
    Exit code: 0 when every service runs its replicas, else 1."""
    async with open_engine() as engine:
        swarm = engine.swarm
        if not await swarm.active():
            return None
        found = await swarm.ours(name)
        if not found:
            return None
        nodes = await swarm.node_names()
        table = Table("service", "slot", "task", "node", "state", "desired")
        healthy = True
        for service in sorted(found, key=lambda s: s["Spec"]["Name"]):
            svc = service["Spec"]["Name"]
            wanted = service["Spec"]["Mode"].get("Replicated", {}).get("Replicas", 0)
            running = 0
            for t in sorted(await swarm.tasks(svc), key=lambda t: t.get("Slot") or 0):
                state = (t.get("Status") or {}).get("State", "?")
                if t.get("DesiredState") == "running" and state == "running":
                    running += 1
                table.add_row(svc, str(t.get("Slot", "")), str(t["ID"])[:12],
                              nodes.get(t.get("NodeID", ""), "?"), state,
                              str(t.get("DesiredState", "")))
            healthy = healthy and running >= wanted
        console.print(f"deployment '{name}': swarm services")
        console.print(table)
    return 0 if healthy else 1
