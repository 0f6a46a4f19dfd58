"""Removing a swarm deployment's services (``down``). A container deployment whose follower
is gone is removed by :func:`loon_supervisor.lifecycle.run.remove_deployment`: each of its
containers becomes a :class:`~loon_supervisor.lifecycle.run.Run` and is torn down."""

from __future__ import annotations

from loon_supervisor.engine.base import Engine
from loon_supervisor.sinks.reporter import Reporter


async def remove_swarm_services(engine: Engine, name: str, say: Reporter) -> bool:
    """Swarm mode: remove the deployment's services first (else Swarm would restart the
    task containers removed next); whether there were any."""

    if not await engine.swarm.active():
        return False
    found = await engine.swarm.ours(name)
    for service in found:
        svc = service.name
        await engine.swarm.remove_one(svc)
        say(f"removed swarm service {svc}")
    return bool(found)
