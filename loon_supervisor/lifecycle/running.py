"""The deployment's running container, as every verb that acts inside it finds it (restart,
exec, backup, restore, rollback): one place for the lookup and its sentence."""

from __future__ import annotations

from loon_supervisor.engine import images
from loon_supervisor.engine.base import Engine
from loon_supervisor.engine.records import ContainerSummary
from loon_supervisor.errors import ConfigError, LoonError, Problem


async def running_container(engine: Engine, name: str) -> ContainerSummary:
    """The deployment's running container, or a LoonError saying how to start it."""
    found = await engine.list_ours(name)
    running = [c for c in found if c.running]
    if not running:
        raise LoonError(f"deployment '{name}' is not running; start it with `loon up -d`")
    return running[0]


async def check_services(engine: Engine, container: ContainerSummary, wanted: list[str]
                         ) -> images.ImageContract:
    """The image's contract; every wanted service must be one it declares."""
    contract = await engine.read_contract(container.image)
    unknown = [s for s in wanted if s not in contract.services]
    if unknown:
        raise ConfigError([Problem("SERVICE", f"{', '.join(unknown)} is not a service of this "
                                   "deployment", f"use one of: {', '.join(contract.services)}")])
    return contract
