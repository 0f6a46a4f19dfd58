"""The engine's records parse the Engine API's JSON as the engine sends it: fields it
leaves out, ``null`` where an object or list is expected, numbers as it writes them."""

from __future__ import annotations

from typing import Any

from loon_supervisor.engine.records import (
    ContainerInfo,
    ContainerSummary,
    EngineVersion,
    ExecResult,
    ImageInfo,
    Mount,
    PortMapping,
    ServiceInfo,
    TaskInfo,
    env_of,
)

LISTED: dict[str, Any] = {
    "Id": "c0ffee" * 10 + "abcd",
    "Names": ["/loon"],
    "Image": "loon:2026.01.01",
    "ImageID": "sha256:1234",
    "State": "running",
    "Status": "Up 2 minutes",
    "Labels": {"org.loon.supervisor": "1", "org.loon.deployment": "loon"},
    "Ports": [{"IP": "0.0.0.0", "PrivatePort": 443, "PublicPort": 8443, "Type": "tcp"},
              {"PrivatePort": 3306, "Type": "tcp"}],
}

INSPECTED: dict[str, Any] = {
    "Id": "c0ffee" * 10 + "abcd",
    "Name": "/loon",
    "Image": "sha256:1234",
    "RestartCount": 2,
    "State": {"Status": "running", "Running": True, "Restarting": False, "ExitCode": 0,
              "StartedAt": "2026-01-01T10:00:00.123456789Z"},
    "Config": {"Image": "loon:2026.01.01", "Env": ["A=1", "B=x=y", "PATH=/bin", "BROKEN"],
               "Labels": {"org.loon.url": "https://loon.example"}, "StopTimeout": 30},
    "Mounts": [{"Type": "bind", "Source": "/srv/logs", "Destination": "/var/log/loon",
                "RW": True},
               {"Type": "volume", "Name": "abc", "Source": "/var/lib/docker/volumes/abc",
                "Destination": "/data"}],
}


def test_a_listed_container() -> None:
    c = ContainerSummary.from_docker(LISTED)
    assert c.id == LISTED["Id"] and c.name == "loon" and c.image == "loon:2026.01.01"
    assert c.state == "running" and c.running and c.status == "Up 2 minutes"
    assert c.labels == {"org.loon.supervisor": "1", "org.loon.deployment": "loon"}
    assert c.ports == (PortMapping(443, "tcp", 8443, "0.0.0.0"), PortMapping(3306, "tcp"))


def test_a_listed_container_with_nulls_and_gaps() -> None:
    """Docker sends ``"Labels": null`` for a container created without labels and
    ``"Ports": null`` for one without ports; an old engine may leave out Names or State."""
    c = ContainerSummary.from_docker({"Id": "x", "Labels": None, "Ports": None,
                                      "Names": None, "State": None})
    assert c == ContainerSummary(id="x")
    assert not c.running and c.name == "" and c.labels == {} and c.ports == ()
    exited = ContainerSummary.from_docker({"Id": "y", "State": "exited",
                                           "Status": "Exited (137) 3 seconds ago"})
    assert not exited.running and exited.status.startswith("Exited (137)")
    port = PortMapping.from_docker({"PrivatePort": 80, "PublicPort": 0, "Type": "udp"})
    assert port.public_port is None and port.type == "udp" and port.ip == ""


def test_an_inspected_container() -> None:
    info = ContainerInfo.from_docker(INSPECTED)
    assert info.id == INSPECTED["Id"] and info.name == "loon"
    assert info.image == "loon:2026.01.01"  # the reference, not the image id
    assert info.running and not info.restarting and info.exit_code == 0
    assert info.started_at == "2026-01-01T10:00:00.123456789Z"
    assert info.restart_count == 2 and info.stop_timeout == 30
    assert info.labels == {"org.loon.url": "https://loon.example"}
    assert info.env == {"A": "1", "B": "x=y", "PATH": "/bin"}  # no "=": left out
    assert info.mounts == (Mount("bind", "/srv/logs", "/var/log/loon"),
                           Mount("volume", "/var/lib/docker/volumes/abc", "/data"))


def test_an_inspected_container_with_nulls_and_gaps() -> None:
    """``RestartCount`` absent, ``State`` without ExitCode or StartedAt, ``Config`` with
    ``"Labels": null``, ``"Env": null`` and no StopTimeout, ``"Mounts": null``."""
    info = ContainerInfo.from_docker({"Id": "x", "State": {"Running": False},
                                      "Config": {"Labels": None, "Env": None, "Image": None},
                                      "Mounts": None})
    assert info == ContainerInfo(id="x")
    assert info.exit_code == -1 and info.restart_count == 0 and info.started_at is None
    assert info.stop_timeout is None and info.labels == {} and info.env == {}
    assert info.image == "" and info.mounts == ()
    assert ContainerInfo.from_docker({}) == ContainerInfo()
    odd = ContainerInfo.from_docker({"State": None, "Config": None, "RestartCount": None})
    assert odd == ContainerInfo()
    restarting = ContainerInfo.from_docker({"State": {"Restarting": True, "ExitCode": 137},
                                            "RestartCount": "3"})
    assert restarting.restarting and restarting.exit_code == 137
    assert restarting.restart_count == 3


def test_env_of() -> None:
    assert env_of(["A=1", "B=", "C"]) == {"A": "1", "B": ""}
    assert env_of(None) == {} and env_of("A=1") == {}


def test_exec_result_reads_as_a_pair() -> None:
    result = ExecResult(3, b"out")
    code, out = result
    assert (code, out) == (3, b"out") == (result.code, result.output)


def test_engine_version() -> None:
    v = EngineVersion.from_docker({"Version": "27.3.1", "ApiVersion": "1.47", "Os": "linux",
                                   "Arch": "amd64", "Components": []})
    assert v == EngineVersion("27.3.1", "1.47", "linux", "amd64")
    assert EngineVersion.from_docker({}) == EngineVersion()


def test_images_listed_and_inspected() -> None:
    """The listing has ``Labels`` at the top (``null`` without labels); the inspection has
    them in ``Config`` (and ``RepoTags`` may be empty or null for a dangling image)."""
    listed = ImageInfo.from_docker({"Id": "sha256:1", "RepoTags": ["loon:a", "loon:b"],
                                    "Labels": {"org.loon.version.built": "2026"}})
    assert listed == ImageInfo("sha256:1", ("loon:a", "loon:b"), {"org.loon.version.built": "2026"})
    assert ImageInfo.from_docker({"Id": "sha256:2", "RepoTags": None, "Labels": None}) == \
        ImageInfo("sha256:2")
    inspected = ImageInfo.from_docker({"Id": "sha256:3", "RepoTags": [],
                                       "Config": {"Labels": {"a": "b"}}})
    assert inspected == ImageInfo("sha256:3", (), {"a": "b"})
    assert ImageInfo.from_docker({"Id": "sha256:4", "Config": {"Labels": None}}).labels == {}


def test_swarm_services_and_tasks() -> None:
    svc = ServiceInfo.from_docker({"ID": "s1", "Spec": {
        "Name": "loon-core", "Labels": {"org.loon.swarm-role": "core"},
        "Mode": {"Replicated": {"Replicas": 2}}}})
    assert svc == ServiceInfo("s1", "loon-core", 2, {"org.loon.swarm-role": "core"})
    assert ServiceInfo.from_docker({"ID": "s2", "Spec": {"Name": "g", "Mode": {"Global": {}},
                                                         "Labels": None}}).replicas == 0
    task = TaskInfo.from_docker({
        "ID": "t1", "Slot": 1, "NodeID": "n1", "DesiredState": "running",
        "CreatedAt": "2026-01-01T00:00:00Z",
        "Status": {"State": "running", "ContainerStatus": {"ContainerID": "c1"}}})
    assert task == TaskInfo("t1", 1, "running", "running", "n1", "c1", "2026-01-01T00:00:00Z")
    assert task.running
    pending = TaskInfo.from_docker({"ID": "t2", "Status": {"State": "pending"},
                                    "DesiredState": "running"})
    assert not pending.running and pending.container_id is None and pending.slot is None
    bare = TaskInfo.from_docker({"ID": "t3", "Status": None})
    assert bare.state == "?" and bare.node_id == "" and bare.created_at == ""
    shutting = TaskInfo.from_docker({"ID": "t4", "Status": {"State": "running"},
                                     "DesiredState": "shutdown"})
    assert not shutting.running
