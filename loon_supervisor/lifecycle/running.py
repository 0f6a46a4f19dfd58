"""The deployment's running container, as every verb that acts inside it finds it (restart,
exec, backup, restore, rollback, attach, doctor): one place for the lookup and its sentence."""

from __future__ import annotations

from loon_supervisor.engine import images
from loon_supervisor.engine.base import Engine
from loon_supervisor.engine.records import ContainerSummary
from loon_supervisor.engine.swarm import CELERY, ROLE_LABEL
from loon_supervisor.errors import ConfigError, LoonError, Problem


async def find_running(engine: Engine, name: str) -> ContainerSummary | None:
    """The deployment's running container, if one runs: for callers whose answer to "none"
    is not an error (attach's own sentence, doctor's verdict, a version to restore). In a
    swarm deployment that is the core's task, which runs every service but Celery."""
    running = [c for c in await engine.list_ours(name) if c.running]
    running.sort(key=lambda c: c.labels.get(ROLE_LABEL) == CELERY)
    return running[0] if running else None


async def running_container(engine: Engine, name: str) -> ContainerSummary:
    """The deployment's running container, or a LoonError saying how to start it."""
    running = await find_running(engine, name)
    if running is None:
        raise LoonError(f"deployment '{name}' is not running; start it with `loon up -d`")
    return running


async def check_services(engine: Engine, container: ContainerSummary, wanted: list[str]
                         ) -> images.ImageContract:
    """The image's contract; every wanted service must be one it declares."""
    contract = await engine.read_contract(container.image)
    unknown = [s for s in wanted if s not in contract.services]
    if unknown:
        raise ConfigError([Problem("SERVICE", f"{', '.join(unknown)} is not a service of this "
                                   "deployment", f"use one of: {', '.join(contract.services)}")])
    return contract
