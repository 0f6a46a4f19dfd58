"""What the engine answers, as typed records: the layers above ``engine/`` read these and
never the engine's JSON. Each record's ``from_docker`` is the one place that parses the
Engine API's JSON for it, tolerating what the engine leaves out or sends as ``null``
(``"Labels": null``, no ``"RestartCount"``, no ``"Ports"``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple


def _obj(value: object) -> Mapping[str, Any]:
    """``value`` when it is a JSON object, else an empty one (``null`` or absent)."""
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: object, default: str = "") -> str:
    return default if value is None else str(value)


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


def _int(value: object, default: int) -> int:
    """An integer field; ``default`` when absent, ``null`` or not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return default
    try:
        return int(value)
    except ValueError:
        return default


def _opt_int(value: object) -> int | None:
    return None if value is None else _int(value, 0)


def _labels(value: object) -> dict[str, str]:
    return {str(k): _str(v) for k, v in _obj(value).items()}


def env_of(entries: object) -> dict[str, str]:
    """A container's ``["K=V", ...]`` environment as a dict (entries without ``=`` left
    out)."""
    return dict(str(e).split("=", 1) for e in _list(entries) if "=" in str(e))


@dataclass(frozen=True)
class PortMapping:
    """One published (or only exposed) port of a listed container."""

    private_port: int
    type: str = "tcp"
    public_port: int | None = None  # None: exposed, not published
    ip: str = ""

    @classmethod
    def from_docker(cls, d: Mapping[str, Any]) -> PortMapping:
        return cls(private_port=_int(d.get("PrivatePort"), 0), type=_str(d.get("Type"), "tcp"),
                   public_port=_opt_int(d.get("PublicPort")) or None, ip=_str(d.get("IP")))


@dataclass(frozen=True)
class ContainerSummary:
    """A container as the engine lists it (``list_ours``, ``find``)."""

    id: str
    name: str = ""  # without the leading "/"; "" when the listing names none
    image: str = ""  # the reference it was created from (Config.Image)
    state: str = ""  # created, running, restarting, exited, dead, ...
    status: str = ""  # the engine's phrase ("Up 2 minutes", "Exited (0) 3 seconds ago")
    labels: dict[str, str] = field(default_factory=dict)
    ports: tuple[PortMapping, ...] = ()

    @property
    def running(self) -> bool:
        return self.state == "running"

    @classmethod
    def from_docker(cls, d: Mapping[str, Any]) -> ContainerSummary:
        names = [str(n) for n in _list(d.get("Names"))]
        return cls(
            id=_str(d.get("Id")), name=names[0].lstrip("/") if names else "",
            image=_str(d.get("Image")), state=_str(d.get("State")),
            status=_str(d.get("Status")), labels=_labels(d.get("Labels")),
            ports=tuple(PortMapping.from_docker(p) for p in _list(d.get("Ports"))
                        if isinstance(p, Mapping)))


@dataclass(frozen=True)
class Mount:
    """One of a container's mounts (``bind``, ``volume``, ...)."""

    type: str
    source: str
    destination: str

    @classmethod
    def from_docker(cls, d: Mapping[str, Any]) -> Mount:
        return cls(type=_str(d.get("Type")), source=_str(d.get("Source")),
                   destination=_str(d.get("Destination")))


@dataclass(frozen=True)
class ContainerInfo:
    """A container as the engine inspects it (``inspect``)."""

    id: str = ""
    name: str = ""
    image: str = ""  # Config.Image: the reference it was created from
    running: bool = False
    restarting: bool = False
    exit_code: int = -1  # -1 when the engine does not say
    started_at: str | None = None  # the current (or last) run's start, as the engine writes it
    restart_count: int = 0  # restarts its restart policy made (a manual start resets it)
    labels: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    stop_timeout: int | None = None  # Config.StopTimeout, None when the engine's default
    mounts: tuple[Mount, ...] = ()

    @classmethod
    def from_docker(cls, d: Mapping[str, Any]) -> ContainerInfo:
        state, config = _obj(d.get("State")), _obj(d.get("Config"))
        return cls(
            id=_str(d.get("Id")), name=_str(d.get("Name")).lstrip("/"),
            image=_str(config.get("Image")),
            running=bool(state.get("Running")), restarting=bool(state.get("Restarting")),
            exit_code=_int(state.get("ExitCode"), -1),
            started_at=_opt_str(state.get("StartedAt")),
            restart_count=_int(d.get("RestartCount"), 0),
            labels=_labels(config.get("Labels")), env=env_of(config.get("Env")),
            stop_timeout=_opt_int(config.get("StopTimeout")),
            mounts=tuple(Mount.from_docker(m) for m in _list(d.get("Mounts"))
                         if isinstance(m, Mapping)))


class ExecResult(NamedTuple):
    """A finished command in a container: its exit code and its output (stdout and stderr
    as they came). A tuple, so ``code, out = await engine.run_capture(...)`` reads it."""

    code: int
    output: bytes


@dataclass(frozen=True)
class EngineVersion:
    """What the engine says about itself (``version``)."""

    version: str | None = None
    api_version: str | None = None
    os: str | None = None
    arch: str | None = None

    @classmethod
    def from_docker(cls, d: Mapping[str, Any]) -> EngineVersion:
        return cls(version=_opt_str(d.get("Version")), api_version=_opt_str(d.get("ApiVersion")),
                   os=_opt_str(d.get("Os")), arch=_opt_str(d.get("Arch")))


@dataclass(frozen=True)
class ImageInfo:
    """An image as the engine lists it (``images_labelled``) or inspects it
    (``image_inspect``): the listing has its labels at the top, the inspection in
    ``Config``."""

    id: str = ""  # sha256:...
    repo_tags: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_docker(cls, d: Mapping[str, Any]) -> ImageInfo:
        labels = d.get("Labels") if "Labels" in d else _obj(d.get("Config")).get("Labels")
        return cls(id=_str(d.get("Id")),
                   repo_tags=tuple(t for t in _list(d.get("RepoTags")) if isinstance(t, str)),
                   labels=_labels(labels))


@dataclass(frozen=True)
class ServiceInfo:
    """A swarm service (``swarm.ours``)."""

    id: str
    name: str
    replicas: int = 0  # wanted replicas; 0 for a global service
    labels: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_docker(cls, d: Mapping[str, Any]) -> ServiceInfo:
        spec = _obj(d.get("Spec"))
        replicated = _obj(_obj(spec.get("Mode")).get("Replicated"))
        return cls(id=_str(d.get("ID")), name=_str(spec.get("Name")),
                   replicas=_int(replicated.get("Replicas"), 0),
                   labels=_labels(spec.get("Labels")))


@dataclass(frozen=True)
class TaskInfo:
    """A swarm task (``swarm.tasks``): one replica's run on a node."""

    id: str
    slot: int | None = None  # None for a global service's task
    state: str = "?"  # Status.State: running, shutdown, failed, ...
    desired_state: str = ""
    node_id: str = ""
    container_id: str | None = None  # once the node made its container
    created_at: str = ""

    @property
    def running(self) -> bool:
        """Running, and meant to (not a task being shut down)."""
        return self.state == "running" and self.desired_state == "running"

    @classmethod
    def from_docker(cls, d: Mapping[str, Any]) -> TaskInfo:
        status = _obj(d.get("Status"))
        cid = _obj(status.get("ContainerStatus")).get("ContainerID")
        return cls(id=_str(d.get("ID")), slot=_opt_int(d.get("Slot")),
                   state=_str(status.get("State"), "?"),
                   desired_state=_str(d.get("DesiredState")), node_id=_str(d.get("NodeID")),
                   container_id=str(cid) if cid else None,
                   created_at=_str(d.get("CreatedAt")))


@dataclass(frozen=True)
class NodeInfo:
    """A swarm node (``swarm.nodes``): how an operator names it, and whether it is up."""

    id: str
    hostname: str = ""
    address: str = ""  # Status.Addr: where the manager sees it from
    state: str = "?"  # Status.State: ready, down, unknown, disconnected
    manager_address: str = ""  # ManagerStatus.Addr's host: a manager's advertise address
    volumes: bool = False  # labelled loon.volumes=true: the core runs there

    @property
    def advertise(self) -> str:
        """Where other nodes reach this one: a manager's advertise address, else the address
        the manager sees it at."""
        return self.manager_address or self.address

    @property
    def names(self) -> tuple[str, str, str]:
        return (self.id, self.address, self.hostname)

    @classmethod
    def from_docker(cls, d: Mapping[str, Any]) -> NodeInfo:
        status = _obj(d.get("Status"))
        manager = _str(_obj(d.get("ManagerStatus")).get("Addr"))
        labels = _obj(_obj(d.get("Spec")).get("Labels"))
        return cls(id=_str(d.get("ID")), hostname=_str(_obj(d.get("Description")).get("Hostname")),
                   address=_str(status.get("Addr")), state=_str(status.get("State"), "?"),
                   manager_address=manager.rsplit(":", 1)[0].strip("[]") if manager else "",
                   volumes=labels.get("loon.volumes") == "true")


def node_labels(nodes: list[NodeInfo]) -> dict[str, str]:
    """node ID -> how out.log and `loon status` name it: the hostname, with the ID's start
    when another node has the same hostname (machines cloned from one image often do)."""
    return {n.id: n.hostname if sum(m.hostname == n.hostname for m in nodes) == 1
            else f"{n.hostname} ({n.id[:12]})" for n in nodes}
