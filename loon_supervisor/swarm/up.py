"""``up`` with ``orchestrator: "swarm"``: services, convergence, task logs, teardown."""

from __future__ import annotations

import time
from contextlib import AsyncExitStack

import anyio
from anyio.abc import TaskGroup, TaskStatus

from loon_supervisor.config.model import LoonConfig
from loon_supervisor.engine import images
from loon_supervisor.engine import swarm as sv
from loon_supervisor.engine.base import Engine, SwarmCalls
from loon_supervisor.engine.client import open_engine_at
from loon_supervisor.errors import (
    ConfigError,
    EngineError,
    ImageContractError,
    LoonError,
    Problem,
)
from loon_supervisor.lifecycle.control import Control
from loon_supervisor.lifecycle.run import Outcome
from loon_supervisor.sinks.reporter import Reporter
from loon_supervisor.sinks.session import Session
from loon_supervisor.swarm.tasklogs import TaskLogs, new_task_logs, watch_tasks

CONVERGE_TIMEOUT = 300.0
# Each shielded teardown step (scale to zero, remove the services) waits the engine at most
# this long: a Ctrl+C never hangs on an engine that stopped answering.
TEARDOWN_STEP = 60.0
# How long `up` waits for a swarmNodeEngines engine to answer before going on without it.
NODE_ENGINE_TIMEOUT = 15.0


async def push_to_registry(swarm: SwarmCalls, image: str, registry: str, say: Reporter
                           ) -> str:
    """Tag ``image`` into the registry and push it: every node must be able to pull it. The
    reference returned pins the pushed digest (``<registry>/<name>:<tag>@sha256:...``), so
    every node runs the same bytes; a failed push raises before anything is deployed."""
    repo, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "latest")
    target = f"{registry.rstrip('/')}/{repo.split('/')[-1]}"
    say(f"pushing {target}:{tag} so every node can pull it")
    digest = await swarm.tag_and_push(image, target, tag)
    say(f"pushed {target}:{tag} as {digest}: every node runs that digest")
    return f"{target}:{tag}@{digest}"


async def wait_converged(swarm: SwarmCalls, name: str, wanted: dict[str, int], say: Reporter
                         ) -> float:
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
                say("converging: " + ", ".join(f"{r} {counts[r]}/{n}"
                                               for r, n in wanted.items()))
            if all(counts[r] >= n for r, n in wanted.items()):
                return time.monotonic() - started
            await anyio.sleep(0.5)
    raise EngineError(f"the swarm services did not converge within {CONVERGE_TIMEOUT:.0f}s "
                      f"({', '.join(f'{r} {last.get(r, 0)}/{n}' for r, n in wanted.items())});"
                      " see `docker service ps`")


async def swarm_up(engine: Engine, cfg: LoonConfig, contract: images.ImageContract,
                   env: dict[str, str], binds: list[str], control: Control, session: Session,
                   detached: bool) -> int:
    swarm = engine.swarm
    say = session.say
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
        image = await push_to_registry(swarm, image, d.imageRegistry, say)
    elif await swarm.node_count() > 1:
        raise ConfigError([Problem("deploymentSettings.imageRegistry",
                                   "is required: this swarm has several nodes and they cannot "
                                   "pull an image built on this one",
                                   "set it to a registry every node can pull from")])
    node = await swarm.label_volume_node()
    say(f"swarm: the core service runs on node {node} (label {sv.VOLUME_NODE_LABEL}=true),"
        " where the volume directories are")
    spec = sv.SwarmSpec(name, image, env, binds, contract.log_dir, contract.run_services_env,
                        contract.services, d.celeryReplicas, d.stopTimeout)
    node_id = await swarm.node_id()
    run = SwarmRun(engine, spec, session, control)
    async with AsyncExitStack() as engines:  # closed after the teardown's last collection
        others = await open_node_engines(engines, swarm, node_id, d.swarmNodeEngines, say)
        logs = new_task_logs(engine, name, contract.services, contract.log_dir, session.path,
                             say, node_id, others)
        async with anyio.create_task_group() as tg:
            try:
                await run.serve(tg, logs, cfg.url)
            finally:
                outcome = await run.teardown()
    return outcome.exit_code(control.stop_signal)


async def open_node_engines(stack: AsyncExitStack, swarm: SwarmCalls, own: str,
                            wanted: dict[str, str], say: Reporter) -> dict[str, Engine]:
    """node ID -> the engine its tasks are followed through (swarmNodeEngines), opened on
    ``stack``. A name that is no node, or an engine that does not answer, is said once and
    left out: the deployment goes on, those tasks are listed but not followed."""
    nodes = await swarm.nodes()
    found: dict[str, Engine] = {}
    for key, url in wanted.items():
        ids = [n.id for n in nodes if key in n.names and n.id != own]
        if not ids:
            say(f"swarmNodeEngines names {key}, which is no other node of this swarm: "
                "its entry is not used (see `docker node ls`)")
            continue
        try:
            with anyio.fail_after(NODE_ENGINE_TIMEOUT):
                node_engine = await stack.enter_async_context(open_engine_at(url))
        except (LoonError, TimeoutError) as exc:
            why = str(exc) or f"no answer within {NODE_ENGINE_TIMEOUT:.0f}s"
            say(f"node {key}'s engine does not answer ({why}): its tasks are not followed")
            continue
        say(f"following the tasks on node {key} through its engine at {url}")
        for nid in ids:
            found[nid] = node_engine
    return found


class SwarmRun:
    """A swarm deployment's run: its services, a follower per task, and the same
    :meth:`teardown` as a container's :class:`~loon_supervisor.lifecycle.run.Run` (one
    budget, shielded, returning an :class:`~loon_supervisor.lifecycle.run.Outcome`):
    scale to zero (the tasks' containers stop but stay, so each follower collects its
    file's last bytes), end the followers, remove the services."""

    def __init__(self, engine: Engine, spec: sv.SwarmSpec, session: Session,
                 control: Control) -> None:
        self.engine = engine
        self.spec = spec
        self.session = session
        self.control = control
        self.wanted = {role: (1 if role == "core" else spec.celery_replicas)
                       for role in sv.roles(spec.services)}
        self.created = False
        self._tasks_stopped = anyio.Event()
        self._followers_done = anyio.Event()
        self._followers: anyio.CancelScope | None = None

    async def serve(self, tg: TaskGroup, logs: TaskLogs, url: str) -> None:
        """Create the services, follow every task, wait for convergence, then for a stop."""
        say, swarm, name = self.session.say, self.engine.swarm, self.spec.name
        followers = await tg.start(self._host_followers)
        async with anyio.create_task_group() as watcher:
            phase = anyio.CancelScope()

            async def stop_on_signal() -> None:
                await self.control.stop_requested.wait()
                phase.cancel()
            watcher.start_soon(stop_on_signal)
            with phase:
                await swarm.create(self.spec)
                self.created = True
                watcher.start_soon(watch_tasks, logs, followers)
                took = await wait_converged(swarm, name, self.wanted, say)
                say(f"Loon is up (swarm): {url}; converged in {took:.1f}s")
                say(f"logs are in {self.session.path} (<service>.<slot>.log); press Ctrl+C "
                    "to stop")
                await self.control.stop_requested.wait()
            watcher.cancel_scope.cancel()

    async def _host_followers(self, *, task_status: TaskStatus[TaskGroup]) -> None:
        """The task followers' group: open until the tasks are stopped, then until every
        follower has read its file to the end (bounded by the teardown)."""
        try:
            async with anyio.create_task_group() as followers:
                self._followers = followers.cancel_scope
                task_status.started(followers)
                await self._tasks_stopped.wait()
        finally:
            self._followers_done.set()

    async def teardown(self) -> Outcome:
        say, swarm = self.session.say, self.engine.swarm
        names = [sv.service_name(self.spec.name, r) for r in self.wanted]
        drain = self.spec.stop_timeout + 30
        failed = False
        with anyio.CancelScope(shield=True) as budget:
            budget.deadline = anyio.current_time() + 2 * TEARDOWN_STEP + drain + 60
            if self.created:
                with anyio.move_on_after(TEARDOWN_STEP) as scaling:
                    say("stopping the swarm tasks")
                    for svc in names:
                        await swarm.scale(svc, 0)
                if scaling.cancelled_caught:
                    say(f"the engine did not scale the services down within "
                        f"{TEARDOWN_STEP:.0f}s; removing them")
                if self._followers is not None:
                    self._followers.deadline = anyio.current_time() + drain
            self._tasks_stopped.set()
            if self._followers is not None:
                await self._followers_done.wait()
            with anyio.move_on_after(TEARDOWN_STEP) as removing:
                for svc in names:
                    await swarm.remove_one(svc)
            if removing.cancelled_caught:
                failed = True
                say(f"the engine did not remove the swarm services within "
                    f"{TEARDOWN_STEP:.0f}s: remove them with `docker service rm` "
                    f"({', '.join(names)})")
            else:
                with anyio.move_on_after(60):
                    await _wait_containers_gone(self.engine, self.spec.name)
                say("removed the swarm services")
        return Outcome(teardown_failed=failed, removed=not failed)


async def _wait_containers_gone(engine: Engine, name: str) -> None:
    """Swarm removes task containers after the services; followers collect their tails."""
    while await engine.list_ours(name):
        await anyio.sleep(0.5)
