"""The two Swarm services of a deployment: their specs, creation, scaling and removal."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import aiodocker
import anyio

from loon_supervisor.engine import raw as rawapi
from loon_supervisor.engine.client import map_engine_errors
from loon_supervisor.engine.containers import DEPLOYMENT_LABEL, TOOL_LABEL
from loon_supervisor.engine.records import NodeInfo, ServiceInfo, TaskInfo
from loon_supervisor.engine.registry_auth import credentials
from loon_supervisor.errors import EngineError

ROLE_LABEL = "org.loon.swarm-role"
VOLUME_NODE_LABEL = "loon.volumes"
CELERY = "celery"


@dataclass(frozen=True)
class SwarmSpec:
    """What both services share; the roles differ in programs, replicas and placement."""

    name: str
    image: str
    env: dict[str, str]
    binds: list[str]
    log_dir: str
    run_services_env: str
    services: tuple[str, ...]
    celery_replicas: int
    stop_timeout: int
    role_env: dict[str, dict[str, str]] = field(default_factory=dict)  # swarm/reach.py


def service_name(name: str, role: str) -> str:
    return f"{name}-{role}"


def roles(services: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """role -> the image's programs it runs (core: all but Celery; celery: Celery)."""
    core = tuple(s for s in services if s != CELERY)
    out = {"core": core}
    if CELERY in services:
        out[CELERY] = (CELERY,)
    return out


def _mounts(binds: list[str], log_dir: str) -> list[dict[str, Any]]:
    mounts: list[dict[str, Any]] = []
    for bind in binds:
        source, target, *mode = bind.split(":")
        mounts.append({"Type": "bind", "Source": source, "Target": target,
                       "ReadOnly": bool(mode and mode[0] == "ro")})
    mounts.append({"Type": "volume", "Target": log_dir})
    return mounts


def task_template(spec: SwarmSpec, role: str, programs: tuple[str, ...]) -> dict[str, Any]:
    env = {**spec.env, **spec.role_env.get(role, {}),
           spec.run_services_env: ",".join(programs)}
    labels = {TOOL_LABEL: "1", DEPLOYMENT_LABEL: spec.name, ROLE_LABEL: role}
    template: dict[str, Any] = {
        "ContainerSpec": {
            "Image": spec.image, "Env": env,  # aiodocker turns the dict into K=V
            "Labels": labels, "Mounts": _mounts(spec.binds if role == "core" else [],
                                                spec.log_dir),
            "StopGracePeriod": spec.stop_timeout * 1_000_000_000,
        },
        "Networks": [{"Target": "host"}],
        "RestartPolicy": {"Condition": "any", "Delay": 1_000_000_000},
    }
    if role == "core":
        template["Placement"] = {"Constraints": [f"node.labels.{VOLUME_NODE_LABEL}==true"]}
    return template


async def create(docker: aiodocker.Docker, spec: SwarmSpec) -> list[str]:
    """Create (or replace) both services; their names."""
    names = []
    for role, programs in roles(spec.services).items():
        svc = service_name(spec.name, role)
        await remove_one(docker, svc)
        replicas = 1 if role == "core" else spec.celery_replicas
        with map_engine_errors(f"creating swarm service {svc}"):
            await docker.services.create(
                task_template(spec, role, programs), name=svc,
                labels={TOOL_LABEL: "1", DEPLOYMENT_LABEL: spec.name, ROLE_LABEL: role},
                mode={"Replicated": {"Replicas": replicas}})
        names.append(svc)
    return names


async def ours(docker: aiodocker.Docker, name: str) -> list[ServiceInfo]:
    with map_engine_errors("listing swarm services"):
        found = await docker.services.list(filters={"label": f"{DEPLOYMENT_LABEL}={name}"})
    return [ServiceInfo.from_docker(s) for s in found]


async def remove_one(docker: aiodocker.Docker, svc: str) -> bool:
    with map_engine_errors(f"removing swarm service {svc}"):
        try:
            await docker.services.delete(svc)
            return True
        except aiodocker.DockerError as exc:
            if exc.status == 404:
                return False
            raise


async def scale(docker: aiodocker.Docker, svc: str, replicas: int) -> None:
    """Change a service's replicas. aiodocker's ``services.update`` can only change the
    image, so this is the one place that posts a whole spec to ``services/<id>/update``."""
    with map_engine_errors(f"scaling {svc}"):
        info = await docker.services.inspect(svc)
        spec = dict(info["Spec"])
        spec["Mode"] = {"Replicated": {"Replicas": replicas}}
        await rawapi.query_json(docker, f"services/{info['ID']}/update", method="POST",
                                 params={"version": str(info["Version"]["Index"])},
                                 data=spec)


async def tasks(docker: aiodocker.Docker, svc: str) -> list[TaskInfo]:
    with map_engine_errors(f"listing the tasks of {svc}"):
        return [TaskInfo.from_docker(t) for t in await docker.tasks.list(filters={"service": svc})]


async def label_volume_node(docker: aiodocker.Docker) -> str:
    """The node that holds the volumes: the labelled one, else this (single) node."""
    with map_engine_errors("listing swarm nodes"):
        nodes = await docker.nodes.list()
        for node in nodes:
            if (node.get("Spec", {}).get("Labels") or {}).get(VOLUME_NODE_LABEL) == "true":
                return str(node["Description"]["Hostname"])
        info = await docker.system.info()
        me = info["Swarm"]["NodeID"]
        node = await docker.nodes.inspect(node_id=me)
        spec = dict(node["Spec"])
        spec["Labels"] = {**(spec.get("Labels") or {}), VOLUME_NODE_LABEL: "true"}
        await docker.nodes.update(node_id=me, version=node["Version"]["Index"], spec=spec)
        return str(node["Description"]["Hostname"])


async def node_count(docker: aiodocker.Docker) -> int:
    with map_engine_errors("listing swarm nodes"):
        return len(await docker.nodes.list())


async def swarm_active(docker: aiodocker.Docker) -> bool:
    with map_engine_errors("asking whether the engine is in a swarm"):
        info = await docker.system.info()
    return (info.get("Swarm") or {}).get("LocalNodeState") == "active" and bool(
        (info.get("Swarm") or {}).get("ControlAvailable"))


async def tag_and_push(docker: aiodocker.Docker, image: str, target: str, tag: str) -> str:
    """Push with the engine's credentials for that registry (as `docker push` finds them) and
    return the digest the registry stored: services name it, so every node runs those bytes
    even if the tag moves. A refused or unreachable registry is an EngineError (aiodocker
    raises on an error in the push's progress stream)."""
    auth = await anyio.to_thread.run_sync(credentials, target)  # a helper may take seconds
    with map_engine_errors(f"tagging {image} as {target}:{tag}"):
        await docker.images.tag(image, target, tag=tag)
    with map_engine_errors(f"pushing {target}:{tag}"):
        try:
            messages = await docker.images.push(target, tag=tag, auth=auth)
        except aiodocker.DockerError as exc:
            if exc.status == 900:  # the engine itself is gone: map_engine_errors says so
                raise
            registry = target.partition("/")[0]
            raise EngineError(f"pushing {target}:{tag} failed, so nothing was deployed: "
                              f"{exc.message}; check that the engine reaches {registry} and "
                              f"has its credentials (`docker login {registry}`)") from None
    for message in messages:
        aux = message.get("aux")
        if isinstance(aux, dict) and isinstance(aux.get("Digest"), str):
            return str(aux["Digest"])
    raise EngineError(f"pushing {target}:{tag}: the registry answered without a digest, so the "
                      "nodes could not be told which bytes to run; check the registry")


async def node_id(docker: aiodocker.Docker) -> str:
    """This engine's node in the swarm."""
    with map_engine_errors("asking for the swarm node"):
        info = await docker.system.info()
    return str(info["Swarm"]["NodeID"])


async def nodes(docker: aiodocker.Docker) -> list[NodeInfo]:
    with map_engine_errors("listing the swarm nodes"):
        return [NodeInfo.from_docker(n) for n in await docker.nodes.list()]


class Swarm:
    """The swarm calls bound to one engine (``DockerEngine.swarm``): the swarm/ package's
    only way to the engine, so nothing above ``engine/`` holds the aiodocker client."""

    def __init__(self, docker: aiodocker.Docker) -> None:
        self._docker = docker

    async def active(self) -> bool:
        return await swarm_active(self._docker)

    async def create(self, spec: SwarmSpec) -> list[str]:
        return await create(self._docker, spec)

    async def ours(self, name: str) -> list[ServiceInfo]:
        return await ours(self._docker, name)

    async def remove_one(self, svc: str) -> bool:
        return await remove_one(self._docker, svc)

    async def scale(self, svc: str, replicas: int) -> None:
        await scale(self._docker, svc, replicas)

    async def tasks(self, svc: str) -> list[TaskInfo]:
        return await tasks(self._docker, svc)

    async def label_volume_node(self) -> str:
        return await label_volume_node(self._docker)

    async def node_count(self) -> int:
        return await node_count(self._docker)

    async def node_id(self) -> str:
        return await node_id(self._docker)

    async def nodes(self) -> list[NodeInfo]:
        return await nodes(self._docker)

    async def tag_and_push(self, image: str, target: str, tag: str) -> str:
        return await tag_and_push(self._docker, image, target, tag)
