"""Creating, finding, stopping and removing this tool's containers."""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiodocker

from loon_supervisor.engine import raw as rawapi
from loon_supervisor.engine.client import map_engine_errors
from loon_supervisor.engine.records import ContainerInfo, ContainerSummary
from loon_supervisor.errors import ContainerConflict

TOOL_LABEL = "org.loon.supervisor"
DEPLOYMENT_LABEL = "org.loon.deployment"
URL_LABEL = "org.loon.url"
# "<restarts>,<window seconds>": the crash-loop rule the container was started with, for a
# logger that re-attaches without the state file (or the config) that carried it.
CRASH_LOOP_LABEL = "org.loon.crash-loop"
RESTART_POLICY = "unless-stopped"


def crash_loop_label(restarts: int, window: float) -> str:
    return f"{restarts},{window:g}"


def parse_crash_loop(value: str | None) -> tuple[int, float] | None:
    """The label's rule, or None when absent or not ours to read (an older container)."""
    try:
        restarts, window = (value or "").split(",")
        rule = int(restarts), float(window)
    except ValueError:
        return None
    return rule if rule[0] >= 1 and rule[1] > 0 else None


@dataclass
class ContainerSpec:
    name: str
    image: str
    env: dict[str, str]
    log_dir: str
    binds: list[str] = field(default_factory=list)
    # Engine API Mount objects besides the binds (an NFS-backed data volume, spec/nfs.py).
    mounts: list[dict[str, Any]] = field(default_factory=list)
    network_mode: str = "default"
    ports: dict[str, int] = field(default_factory=dict)
    stop_timeout: int = 10
    # Directories on this machine copied into the container before it starts (a remote
    # engine cannot bind them): container path -> local directory.
    copies: dict[str, Path] = field(default_factory=dict)
    # More labels (``org.loon.url``: what ``attach`` says without a config).
    labels: dict[str, str] = field(default_factory=dict)
    # A host directory bound at log_dir (the local fast path, streams/sources/hostdir.py),
    # or None for the anonymous log volume (followed by exec).
    log_host_dir: Path | None = None


# The container's own output (container.log) is resumed by re-reading the engine's stored
# log from its first byte and skipping what the host file has (engine/exec/
# container_log.py): that needs a stored log that is never rotated or dropped. A daemon-wide
# default (journald, or json-file with max-size) would break it, so the container names its
# driver. The engine merges the daemon's log-opts into a container's config of the same
# driver, and json-file cannot be told "no limit" once a max-size is set, so max-size is
# given as 1 TB (never reached by supervisord's output; max-file keeps its default, 1).
LOG_CONFIG: dict[str, Any] = {"Type": "json-file", "Config": {"max-size": "1t"}}


def _config(spec: ContainerSpec) -> dict[str, Any]:
    host: dict[str, Any] = {
        "Init": True,
        "Binds": spec.binds + ([f"{spec.log_host_dir}:{spec.log_dir}"]
                               if spec.log_host_dir is not None else []),
        "NetworkMode": spec.network_mode,
        **({"Mounts": spec.mounts} if spec.mounts else {}),
        "LogConfig": LOG_CONFIG,
        # The engine starts it again after its own restart (a reboot); `loon down`, a
        # follower's stop and `docker stop` are manual stops, which it does not undo.
        "RestartPolicy": {"Name": RESTART_POLICY},
    }
    cfg: dict[str, Any] = {
        "Image": spec.image,
        "Env": [f"{k}={v}" for k, v in spec.env.items()],
        "Labels": {**spec.labels, TOOL_LABEL: "1", DEPLOYMENT_LABEL: spec.name},
        # The log dir gets its own (anonymous) volume: a local filesystem where GNU tail
        # follows with inotify instead of polling, and which outlives the container's stop
        # so the final bytes can be collected before removal.
        # With log_host_dir the bind takes its place (the files stay on this machine).
        "Volumes": {} if spec.log_host_dir is not None else {spec.log_dir: {}},
        "StopTimeout": spec.stop_timeout,
        "HostConfig": host,
    }
    if spec.network_mode not in ("host", "none") and spec.ports:
        cfg["ExposedPorts"] = {_port(p): {} for p in spec.ports}
        host["PortBindings"] = {_port(p): [{"HostPort": str(h)}] for p, h in spec.ports.items()}
    return cfg


def _tar_of(source: Path, target: str) -> bytes:
    """``source``'s files as a tar placed at ``target`` (read-only for others)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(str(source), arcname=target.lstrip("/"), recursive=True)
    return buf.getvalue()


def _port(p: str) -> str:
    return p if "/" in p else f"{p}/tcp"


async def find(docker: aiodocker.Docker, name: str) -> ContainerSummary | None:
    """The container called ``name`` (any state), or None."""
    with map_engine_errors(f"looking for container {name}"):
        found = await docker.containers.list(all=True, filters={"name": [f"^/{name}$"]})
    return ContainerSummary.from_docker(rawapi.as_dict(found[0])) if found else None


async def create_and_start(docker: aiodocker.Docker, spec: ContainerSpec) -> str:
    existing = await find(docker, spec.name)
    if existing is not None:
        ours = existing.labels.get(TOOL_LABEL) == "1"
        state = existing.state or "unknown"
        hint = ("follow it again with `loon attach`, stop it with `python3 build.py -D` "
                "(or `loon down`)" if ours and state == "running" else
                "stop it with `python3 build.py -D` (or `loon down`)" if ours else
                "it was not started by this tool; remove it yourself or choose another "
                "deploymentSettings.containerName")
        raise ContainerConflict(
            f"a container named '{spec.name}' already exists ({state}): {hint}, or pass "
            "--replace to remove it first"
        )
    with map_engine_errors(f"creating container {spec.name}"):
        container = await docker.containers.create(_config(spec), name=spec.name)
    with map_engine_errors(f"starting container {spec.name}"):
        try:
            for target, source in spec.copies.items():
                await container.put_archive(  # type: ignore[no-untyped-call]
                    "/", _tar_of(source, target))
            await container.start()
        except BaseException:
            await container.delete(force=True, v=True)
            raise
    return container.id


async def stop(docker: aiodocker.Docker, cid: str, timeout: int | None = None) -> None:
    """Stop within ``timeout`` seconds; None uses the StopTimeout the container was created
    with (deploymentSettings.stopTimeout)."""
    with map_engine_errors("stopping the container"):
        try:
            await docker.containers.container(cid).stop(t=timeout)
        except aiodocker.DockerError as exc:
            if exc.status not in (304, 404):
                raise


async def kill(docker: aiodocker.Docker, cid: str) -> None:
    with map_engine_errors("killing the container"):
        try:
            await docker.containers.container(cid).kill()
        except aiodocker.DockerError as exc:
            if exc.status not in (404, 409):
                raise


async def remove(docker: aiodocker.Docker, cid: str) -> None:
    with map_engine_errors("removing the container"):
        try:
            await docker.containers.container(cid).delete(force=True, v=True)
        except aiodocker.DockerError as exc:
            if exc.status not in (404, 409):
                raise


async def wait_exit(docker: aiodocker.Docker, cid: str) -> int:
    """Block until the container stops; its exit code."""
    with map_engine_errors("waiting for the container"):
        result = await docker.containers.container(cid).wait(timeout=None)
    return int(result.get("StatusCode", -1))


async def inspect(docker: aiodocker.Docker, cid: str) -> ContainerInfo | None:
    with map_engine_errors("inspecting the container"):
        try:
            return ContainerInfo.from_docker(await docker.containers.container(cid).show())
        except aiodocker.DockerError as exc:
            if exc.status == 404:
                return None
            raise


async def list_ours(docker: aiodocker.Docker, name: str | None = None
                    ) -> list[ContainerSummary]:
    filters = {"label": [f"{TOOL_LABEL}=1"] + ([f"{DEPLOYMENT_LABEL}={name}"] if name else [])}
    with map_engine_errors("listing containers"):
        found = await docker.containers.list(all=True, filters=filters)
    return [ContainerSummary.from_docker(rawapi.as_dict(c)) for c in found]


async def restart(docker: aiodocker.Docker, cid: str) -> None:
    with map_engine_errors("restarting the container"):
        await docker.containers.container(cid).restart()
