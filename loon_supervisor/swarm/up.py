"""``up`` with ``orchestrator: "swarm"``: services, convergence, task logs, teardown."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
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
    signal_exit_code,
)
from loon_supervisor.lifecycle import state as statefile
from loon_supervisor.lifecycle.control import Control
from loon_supervisor.lifecycle.logger_process import reclaim, start_logger
from loon_supervisor.lifecycle.run import Outcome
from loon_supervisor.lifecycle.state import DeploymentLock, DeploymentState, swarm_cid
from loon_supervisor.sinks.reporter import Reporter
from loon_supervisor.sinks.session import Session
from loon_supervisor.swarm.reach import core_address, role_environment
from loon_supervisor.swarm.tasklogs import (
    WATCH_INTERVAL,
    TaskLogs,
    new_task_logs,
    watch_tasks,
)

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
                   detached: bool, lock: DeploymentLock | None = None) -> int:
    """Deploy the services and follow every task: until Ctrl+C (then remove them), or with
    ``detached`` until they converged and a background logger took the following over."""
    swarm = engine.swarm
    say = session.say
    d = cfg.deploymentSettings
    name = d.containerName
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
    address = core_address(await swarm.nodes(), d.swarmCoreAddress)
    say(f"swarm: Celery workers reach MariaDB, Redis and MinIO at {address} (the core binds "
        "them there too; Redis with a password)" + ("" if d.swarmCoreAddress else
                                                    ": set swarmCoreAddress to change it"))
    spec = sv.SwarmSpec(name, image, env, binds, contract.log_dir, contract.run_services_env,
                        contract.services, d.celeryReplicas, d.stopTimeout,
                        role_environment(env, address, env["SECRET_KEY"]))
    state = DeploymentState(
        name=name, cid=swarm_cid(name), session=session.path, image=image,
        services=contract.services, log_dir=contract.log_dir,
        status_command=contract.status_command, url=cfg.url, stop_timeout=d.stopTimeout,
        orchestrator="swarm", node_engines=dict(d.swarmNodeEngines))
    run = SwarmRun(engine, spec, session, control)
    outcome = await run.run(state, create=True, detached=detached)
    if outcome.handed_over:
        assert lock is not None
        return await _hand_over(engine, state, session, control, lock)
    return outcome.exit_code(control.stop_signal)


async def _hand_over(engine: Engine, state: DeploymentState, session: Session,
                     control: Control, lock: DeploymentLock) -> int:
    """``up -d``: the converged services go to a background logger, which continues every
    task's file where this process stopped. If it does not attach, the services are removed
    here, their files completed first (as ``down`` does for a dead logger)."""
    say = session.say
    proc, ok = await start_logger(state, lock, control.stop_requested)
    if ok:
        say(f"Loon is up (swarm): {state.url}")
        say(f"logs are in {state.session} (<service>.<slot>.log; a background logger, pid "
            f"{proc.pid}, keeps writing them)")
        say("stop everything with: python3 build.py -D   (or: loon down)")
        return 0
    if control.stop_signal is None:
        say(f"the background logger did not attach; see {session.logger_stderr}; removing "
            "the swarm services")
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    reclaim(lock)
    removal = Control()
    removal.request_stop(signal.SIGTERM)
    with anyio.CancelScope(shield=True):
        await SwarmRun.adopted(engine, state, session, removal).run(state)
    statefile.forget(state.name, state.cid)
    return signal_exit_code(control.stop_signal) if control.stop_signal is not None else 1


async def follow_swarm(engine: Engine, state: DeploymentState, session: Session,
                       control: Control, on_attached: Callable[[], None] | None = None
                       ) -> Outcome:
    """A follower of running services (the background logger, ``down`` for a dead one):
    every task's file continues at its size; a ``down`` (a stop signal) removes the
    services after the last bytes, any other end (a hand-over) leaves them running."""
    return await SwarmRun.adopted(engine, state, session, control).run(
        state, on_attached=on_attached)


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
        self.gone = False  # the services were removed by something other than loon
        self._tasks_stopped = anyio.Event()
        self._followers_done = anyio.Event()
        self._followers: anyio.CancelScope | None = None
        self.node_engines: dict[str, Engine] = {}

    @classmethod
    def adopted(cls, engine: Engine, state: DeploymentState, session: Session,
                control: Control) -> SwarmRun:
        """The run of services an earlier process created (they are in ``state``)."""
        spec = sv.SwarmSpec(state.name, state.image, {}, [], state.log_dir, "",
                            state.services, 0, state.stop_timeout)
        run = cls(engine, spec, session, control)
        run.created = True
        return run

    async def run(self, state: DeploymentState, *, create: bool = False,
                  detached: bool = False, on_attached: Callable[[], None] | None = None
                  ) -> Outcome:
        """Follow every task (creating the services first with ``create``) until a stop,
        or with ``detached`` until they converged; then tear down, or hand over."""
        swarm, say = self.engine.swarm, self.session.say
        node_id = await swarm.node_id()
        async with AsyncExitStack() as engines:  # closed after the teardown's last collection
            others = await open_node_engines(engines, swarm, node_id, state.node_engines, say)
            self.node_engines = others
            logs = new_task_logs(self.engine, state.name, state.services, state.log_dir,
                                 self.session.path, say, node_id, others)
            async with anyio.create_task_group() as tg:
                try:
                    await self.serve(tg, logs, state.url, create=create, detached=detached,
                                     on_attached=on_attached)
                finally:
                    if self.control.handing_over or (
                            detached and self.control.stop_signal is None):
                        outcome = await self.detach()
                    else:
                        outcome = await self.teardown()
        return outcome

    async def serve(self, tg: TaskGroup, logs: TaskLogs, url: str, *, create: bool = True,
                    detached: bool = False, on_attached: Callable[[], None] | None = None
                    ) -> None:
        """Create the services (``create``), follow every task, wait for convergence, then
        for a stop (``detached``: return once converged)."""
        say, swarm, name = self.session.say, self.engine.swarm, self.spec.name
        followers = await tg.start(self._host_followers)
        async with anyio.create_task_group() as watcher:
            phase = anyio.CancelScope()

            async def stop_on_signal() -> None:
                await self.control.stop_requested.wait()
                phase.cancel()

            async def end_when_removed() -> None:
                """Services removed behind loon's back: nothing is left to follow."""
                while True:
                    await anyio.sleep(WATCH_INTERVAL * 2)
                    try:
                        if not await swarm.ours(name):
                            break
                    except EngineError:
                        continue
                self.gone = True
                say("the swarm services are gone (removed without `loon down`): following "
                    "ends")
                phase.cancel()
            if not create:  # adopted: every task gets its follower before a stop counts
                watcher.start_soon(watch_tasks, logs, followers)
                await logs.first_round.wait()
            watcher.start_soon(stop_on_signal)
            if not create:
                watcher.start_soon(end_when_removed)
            with phase:
                if create:
                    await swarm.create(self.spec)
                    self.created = True
                    watcher.start_soon(watch_tasks, logs, followers)
                    watcher.start_soon(end_when_removed)
                if create:
                    took = await wait_converged(swarm, name, self.wanted, say)
                    if not detached:
                        say(f"Loon is up (swarm): {url}; converged in {took:.1f}s")
                        say(f"logs are in {self.session.path} (<service>.<slot>.log); press "
                            "Ctrl+C to stop")
                    else:
                        say(f"converged in {took:.1f}s")
                await logs.first_round.wait()
                if on_attached is not None:
                    on_attached()
                if not detached:
                    await self.control.stop_requested.wait()
            watcher.cancel_scope.cancel()

    async def detach(self) -> Outcome:
        """The followers stop where they are, each file's size its position; the services
        run on for the next follower."""
        with anyio.CancelScope(shield=True):
            if self._followers is not None:
                self._followers.cancel()
            self._tasks_stopped.set()
            await self._followers_done.wait()
        return Outcome(handed_over=True)

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
                        try:
                            await swarm.scale(svc, 0)
                        except EngineError:
                            pass  # already removed (or the engine is gone): removal says

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
                engines = _distinct([self.engine, *self.node_engines.values()])
                with anyio.move_on_after(60):
                    for engine in engines:
                        await _wait_containers_gone(engine, self.spec.name)
                say("removed the swarm services")
                with anyio.move_on_after(TEARDOWN_STEP):
                    await _untag_pushed(engines, self.spec.image, say)
        failure = ("the swarm services were removed without `loon down` (docker service rm?)"
                   if self.gone else None)
        return Outcome(failure=failure, teardown_failed=failed, removed=not failed)


def _distinct(engines: list[Engine]) -> list[Engine]:
    return list({id(e): e for e in engines}.values())


async def _wait_containers_gone(engine: Engine, name: str) -> None:
    """Swarm removes task containers after the services; followers collect their tails."""
    try:
        while await engine.list_ours(name):
            await anyio.sleep(0.5)
    except EngineError:
        pass  # a node's engine that went away: nothing of ours can be listed there


async def _untag_pushed(engines: list[Engine], image: str, say: Reporter) -> None:
    """A pushed run leaves no registry tag behind: the push tag on this engine and the
    pulled copy on every followed node go. The registry keeps the bytes, and the built tag
    stays for ``loon rollback``, as in a container deployment."""
    ref, at, digest = image.partition("@")
    if not at:
        return
    repo = ref.rsplit(":", 1)[0] if ":" in ref.rsplit("/", 1)[-1] else ref
    for engine in engines:
        for reference in (ref, f"{repo}@{digest}"):
            try:
                why = await engine.image_delete(reference)
            except EngineError as exc:
                why = str(exc)
            if why is not None:
                say(f"kept image {reference} on an engine: {why}")
