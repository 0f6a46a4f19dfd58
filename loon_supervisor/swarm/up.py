"""``up`` with ``orchestrator: "swarm"``: services, convergence, task logs, teardown."""

from __future__ import annotations

import time
from pathlib import Path

import anyio

from loon_supervisor.config.model import LoonConfig
from loon_supervisor.engine import images
from loon_supervisor.engine import swarm as sv
from loon_supervisor.engine.base import Engine, SwarmCalls
from loon_supervisor.errors import (
    ConfigError,
    EngineError,
    ImageContractError,
    Problem,
    signal_exit_code,
)
from loon_supervisor.lifecycle.control import Control
from loon_supervisor.swarm.tasklogs import new_task_logs, watch_tasks

CONVERGE_TIMEOUT = 300.0
# Each shielded teardown step (scale to zero, remove the services) waits the engine at most
# this long: a Ctrl+C never hangs on an engine that stopped answering.
TEARDOWN_STEP = 60.0


async def push_to_registry(swarm: SwarmCalls, image: str, registry: str,
                           control: Control) -> str:
    """Tag ``image`` into the registry and push it: every node must be able to pull it."""
    repo, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "latest")
    target = f"{registry.rstrip('/')}/{repo.split('/')[-1]}"
    control.say(f"pushing {target}:{tag} so every node can pull it")
    await swarm.tag_and_push(image, target, tag)
    return f"{target}:{tag}"


async def wait_converged(swarm: SwarmCalls, name: str, wanted: dict[str, int],
                         control: Control) -> float:
    """Until every service runs its replicas; progress lines as counts change."""
    started = time.monotonic()
    last: dict[str, int] = {}
    with anyio.move_on_after(CONVERGE_TIMEOUT):
        while True:
            counts = {}
            for role in wanted:
                found = await swarm.tasks(sv.service_name(name, role))
                counts[role] = sum(1 for t in found if t.running)
            if counts != last:
                last = counts
                control.say("converging: " + ", ".join(f"{r} {counts[r]}/{n}"
                                                   for r, n in wanted.items()))
            if all(counts[r] >= n for r, n in wanted.items()):
                return time.monotonic() - started
            await anyio.sleep(0.5)
    raise EngineError(f"the swarm services did not converge within {CONVERGE_TIMEOUT:.0f}s "
                      f"({', '.join(f'{r} {last.get(r, 0)}/{n}' for r, n in wanted.items())});"
                      " see `docker service ps`")


async def swarm_up(engine: Engine, cfg: LoonConfig, contract: images.ImageContract,
                   env: dict[str, str], binds: list[str], control: Control, session: Path,
                   detached: bool) -> int:
    swarm = engine.swarm
    d = cfg.deploymentSettings
    name = d.containerName
    if detached:
        raise ConfigError([Problem("-d", "is not supported with orchestrator swarm yet",
                                   "run in the foreground (Ctrl+C removes the services)")])
    if not await swarm.active():
        raise EngineError("deploymentSettings.orchestrator is swarm but this engine is not a "
                          "swarm manager: run `docker swarm init` on it (or use another "
                          "engine), or set orchestrator to container")
    if not contract.run_services_env:
        raise ImageContractError(f"image {contract.image} cannot run Celery alone: it has no "
                                 f"'{images.RUN_SERVICES_LABEL}' label")
    image = contract.image
    if d.imageRegistry:
        image = await push_to_registry(swarm, image, d.imageRegistry, control)
    elif await swarm.node_count() > 1:
        raise ConfigError([Problem("deploymentSettings.imageRegistry",
                                   "is required: this swarm has several nodes and they cannot "
                                   "pull an image built on this one",
                                   "set it to a registry every node can pull from")])
    node = await swarm.label_volume_node()
    control.say(f"swarm: the core service runs on node {node} (label {sv.VOLUME_NODE_LABEL}=true),"
            " where the volume directories are")
    spec = sv.SwarmSpec(name, image, env, binds, contract.log_dir, contract.run_services_env,
                        contract.services, d.celeryReplicas, d.stopTimeout)
    wanted = {role: (1 if role == "core" else d.celeryReplicas)
              for role in sv.roles(spec.services)}
    node_id = await swarm.node_id()
    logs = new_task_logs(engine, name, contract.services, contract.log_dir, session, control.say,
                         node_id)
    try:
        async with anyio.create_task_group() as followers:
            async with anyio.create_task_group() as watcher:
                phase = anyio.CancelScope()

                async def stop_on_signal() -> None:
                    await control.stop_requested.wait()
                    phase.cancel()
                watcher.start_soon(stop_on_signal)
                with phase:
                    await swarm.create(spec)
                    watcher.start_soon(watch_tasks, logs, followers)
                    took = await wait_converged(swarm, name, wanted, control)
                    control.say(f"Loon is up (swarm): {cfg.url}; converged in {took:.1f}s")
                    control.say(f"logs are in {session} (<service>.<slot>.log); press Ctrl+C "
                            "to stop")
                    await control.stop_requested.wait()
                watcher.cancel_scope.cancel()
            with anyio.CancelScope(shield=True), anyio.move_on_after(TEARDOWN_STEP) as scaling:
                # Scaled to zero, the tasks' containers stop but stay (task history), so
                # each follower collects its file's last bytes before the services go.
                control.say("stopping the swarm tasks")
                for role in wanted:
                    await swarm.scale(sv.service_name(name, role), 0)
            if scaling.cancelled_caught:
                control.say(f"the engine did not scale the services down within "
                            f"{TEARDOWN_STEP:.0f}s; removing them")
            followers.cancel_scope.deadline = anyio.current_time() + d.stopTimeout + 30
    finally:
        with anyio.CancelScope(shield=True):
            with anyio.move_on_after(TEARDOWN_STEP) as removing:
                for role in wanted:
                    await swarm.remove_one(sv.service_name(name, role))
            if removing.cancelled_caught:
                control.say(f"the engine did not remove the swarm services within "
                            f"{TEARDOWN_STEP:.0f}s: remove them with `docker service rm` "
                            f"({', '.join(sv.service_name(name, r) for r in wanted)})")
            else:
                with anyio.move_on_after(60):
                    await _wait_containers_gone(engine, name)
                control.say("removed the swarm services")
    return signal_exit_code(control.stop_signal) if control.stop_signal else 0


async def _wait_containers_gone(engine: Engine, name: str) -> None:
    """Swarm removes task containers after the services; followers collect their tails."""
    while await engine.list_ours(name):
        await anyio.sleep(0.5)
