"""Choosing the log source (deploymentSettings.logSource x local/remote engine), keeping it
in the state, and the fast path's host directory; pure, no engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from loon_supervisor.engine.containers import ContainerSpec, _config
from loon_supervisor.errors import ConfigError
from loon_supervisor.streams.sources.choice import (
    EXEC,
    HOSTDIR,
    choose,
    prepare_host_dir,
    recorded,
    remove_host_dir,
)


@pytest.mark.parametrize(("setting", "remote", "kind"), [
    ("auto", False, HOSTDIR), ("auto", True, EXEC), ("exec", False, EXEC),
    ("exec", True, EXEC), ("hostdir", False, HOSTDIR)])
def test_choice(tmp_path: Path, setting: str, remote: bool, kind: str) -> None:
    c = choose(setting, remote, tmp_path, "dep")
    assert c.kind == kind
    assert c.host_dir == (tmp_path / "service-logs" / "dep" if kind == HOSTDIR else None)
    again = recorded(c.kind, tmp_path, "dep")  # what later verbs read from the state
    assert (again.kind, again.host_dir) == (c.kind, c.host_dir)


def test_hostdir_with_a_remote_engine_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        choose("hostdir", True, tmp_path, "dep")
    assert err.value.exit_code == 2
    assert "deploymentSettings.logSource" in str(err.value) and "auto" in str(err.value)


def test_a_recorded_unknown_source_is_exec(tmp_path: Path) -> None:
    assert recorded("", tmp_path, "dep").kind == EXEC


def test_host_dir_is_fresh_per_container_and_removed(tmp_path: Path) -> None:
    d = tmp_path / "service-logs" / "dep"
    prepare_host_dir(d)
    (d / "old.log").write_text("from an earlier container\n")
    prepare_host_dir(d)
    assert d.is_dir() and not any(d.iterdir())
    (d / "sub").mkdir()
    (d / "sub" / "x.log").write_text("x")
    assert remove_host_dir(d) is None
    assert not d.exists()
    assert remove_host_dir(d) is None  # nothing to remove is fine


def test_container_config_binds_the_host_dir_instead_of_a_volume(tmp_path: Path) -> None:
    spec = ContainerSpec("n", "img", {}, "/var/log/loon", binds=["/a:/b"])
    assert _config(spec)["Volumes"] == {"/var/log/loon": {}}
    assert _config(spec)["HostConfig"]["Binds"] == ["/a:/b"]
    spec.log_host_dir = tmp_path
    cfg = _config(spec)
    assert cfg["Volumes"] == {}
    assert cfg["HostConfig"]["Binds"] == ["/a:/b", f"{tmp_path}:/var/log/loon"]


def test_source_from_the_containers_mounts(tmp_path: Path) -> None:
    from loon_supervisor.engine.records import ContainerInfo
    from loon_supervisor.streams.sources.choice import from_container

    def inspected(mount: dict[str, str]) -> ContainerInfo:
        return ContainerInfo.from_docker({"Mounts": [mount]})

    bind = {"Type": "bind", "Source": str(tmp_path), "Destination": "/var/log/loon"}
    assert from_container(inspected(bind), "/var/log/loon").host_dir == tmp_path
    volume = {"Type": "volume", "Source": str(tmp_path), "Destination": "/var/log/loon"}
    assert from_container(inspected(volume), "/var/log/loon").kind == EXEC
    gone = {**bind, "Source": str(tmp_path / "not-here")}  # a path of another machine
    assert from_container(inspected(gone), "/var/log/loon").kind == EXEC
    assert from_container(None, "/var/log/loon").kind == EXEC


class FakeEngine:
    """Only what Sources uses: a probe command's answer."""

    def __init__(self, sees: bool) -> None:
        self.sees = sees
        self.commands: list[list[str]] = []

    async def run_capture(self, cid: str, cmd: list[str], env=None):  # type: ignore[no-untyped-def]
        self.commands.append(cmd)
        return (0 if self.sees else 1), b""


@pytest.mark.anyio
@pytest.mark.parametrize("sees", [True, False])
async def test_sources_verify_the_bind_or_fall_back_to_exec(tmp_path: Path, sees: bool) -> None:
    from loon_supervisor.streams.sources.choice import Sources
    from loon_supervisor.streams.sources.exec import ExecSource
    from loon_supervisor.streams.sources.hostdir import HostDirSource

    said: list[str] = []
    engine = FakeEngine(sees)
    sources = Sources(choose("auto", False, tmp_path, "dep"), engine, "/var/log/loon")  # type: ignore[arg-type]
    prepare_host_dir(tmp_path / "service-logs" / "dep")
    await sources.verify("c1", said.append)
    assert engine.commands and engine.commands[0][-1].startswith("/var/log/loon/.loon-bind-")
    assert list((tmp_path / "service-logs" / "dep").iterdir()) == []  # marker removed
    if sees:
        assert sources.kind == HOSTDIR and isinstance(sources("c1"), HostDirSource)
        assert said == []
    else:
        assert sources.kind == EXEC and isinstance(sources("c1"), ExecSource)
        assert "falling back to exec" in said[0]
