"""``loon doctor`` on a swarm deployment: can each Celery worker on another node reach the
core's MariaDB and Redis? Asked from inside the worker's own container, through that node's
engine (``swarmNodeEngines``), at the addresses ``up`` wrote into its environment: what a
firewall between the machines, or a core bound to the wrong address, breaks first."""

from __future__ import annotations

from contextlib import AsyncExitStack

from loon_supervisor.config.model import LoonConfig
from loon_supervisor.engine.base import Engine
from loon_supervisor.engine.records import node_labels
from loon_supervisor.engine.swarm import CELERY, service_name
from loon_supervisor.errors import LoonError
from loon_supervisor.sinks.reporter import Reporter
from loon_supervisor.swarm.reach import REACH_PROBE, broker_target

from .verdict import FAIL, PASS, SKIP, WARN, Verdict

SERVICE = "celery"
CHECK = "reach from other nodes"


async def worker_reach(engine: Engine, config: LoonConfig) -> list[Verdict]:
    """One verdict per Celery task on a node other than the core's."""
    from loon_supervisor.swarm.up import open_node_engines

    name = config.deploymentSettings.containerName
    swarm = engine.swarm
    if not await swarm.active():
        return [Verdict(SERVICE, CHECK, SKIP, "this engine is not a swarm manager", "")]
    nodes = await swarm.nodes()
    labels = node_labels(nodes)
    core_nodes = {t.node_id for t in await swarm.tasks(service_name(name, "core")) if t.running}
    workers = [t for t in await swarm.tasks(service_name(name, CELERY))
               if t.running and t.container_id and t.node_id not in core_nodes]
    if not workers:
        return [Verdict(SERVICE, CHECK, SKIP, "every running Celery task is on the core's node",
                        "")]
    verdicts = []
    async with AsyncExitStack() as stack:
        own = await swarm.node_id()
        engines = await open_node_engines(stack, swarm, own,
                                          config.deploymentSettings.swarmNodeEngines,
                                          Reporter(None, None))
        for task in workers:
            where = labels.get(task.node_id, task.node_id[:12])
            node_engine = engines.get(task.node_id)
            if node_engine is None:
                verdicts.append(Verdict(
                    SERVICE, CHECK, WARN, f"task {task.id[:12]} runs on node {where}, whose "
                    "engine this cannot reach", "name that node's engine in "
                    "deploymentSettings.swarmNodeEngines to check it"))
                continue
            verdicts.append(await _probe(node_engine, task.container_id or "", task.id, where))
    return verdicts


async def _probe(engine: Engine, cid: str, task_id: str, where: str) -> Verdict:
    try:
        info = await engine.inspect(cid)
        env = info.env if info else {}
        db = (env.get("DATABASE_HOST", "127.0.0.1"), env.get("DATABASE_PORT", "3306"))
        redis = broker_target(env)
        code, out = await engine.run_capture(
            cid, ["sh", "-c", REACH_PROBE, "probe", db[0], str(db[1]), redis[0],
                  str(redis[1])])
    except LoonError as exc:
        return Verdict(SERVICE, CHECK, FAIL, f"task {task_id[:12]} on node {where}: {exc}",
                       "check that node's engine (`docker -H ... info`)")
    lines = out.decode(errors="replace").split()
    results = dict(zip(lines[1::2], lines[0::2], strict=False))  # "host:port" -> ok|fail
    named = {f"{db[0]}:{db[1]}": "MariaDB", f"{redis[0]}:{redis[1]}": "Redis"}
    failed = [f"{what} at {target}" for target, what in named.items()
              if results.get(target) != "ok"]
    if code != 0 or failed:
        return Verdict(SERVICE, CHECK, FAIL,
                       f"task {task_id[:12]} on node {where} cannot reach "
                       f"{' or '.join(failed) or 'the core'}",
                       f"open TCP {db[1]} and {redis[1]} from node {where} to {db[0]} "
                       "(firewall), and check deploymentSettings.swarmCoreAddress is the core "
                       "node's address")
    return Verdict(SERVICE, CHECK, PASS,
                   f"task {task_id[:12]} on node {where} reaches MariaDB at {db[0]}:{db[1]} "
                   f"and Redis at {redis[0]}:{redis[1]}")
