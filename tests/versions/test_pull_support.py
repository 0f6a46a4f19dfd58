"""Registry credentials from the docker config, and the pull's progress accounting."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from rich.console import Console

from loon_supervisor.engine.registry_auth import DOCKER_HUB, credentials, registry_of
from loon_supervisor.sinks.reporter import Reporter
from loon_supervisor.versions.pull import PullProgress


@pytest.mark.parametrize(("ref", "registry"), [
    ("loon:v1", DOCKER_HUB), ("visdesignlab/loon:v1", DOCKER_HUB),
    ("ghcr.io/visdesignlab/loon:v1", "ghcr.io"), ("127.0.0.1:5000/loon", "127.0.0.1:5000"),
    ("localhost/loon:x", "localhost"),
])
def test_registry_of(ref: str, registry: str) -> None:
    assert registry_of(ref) == registry


def _config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: object) -> None:
    (tmp_path / "config.json").write_text(json.dumps(data))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))


def test_credentials_from_auths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    auth = base64.b64encode(b"me:pa:ss").decode()
    _config(tmp_path, monkeypatch, {"auths": {"127.0.0.1:5000": {"auth": auth},
                                              "https://index.docker.io/v1/": {"auth": auth}}})
    assert credentials("127.0.0.1:5000/lab/loon:v1") == {
        "username": "me", "password": "pa:ss", "serveraddress": "127.0.0.1:5000"}
    assert credentials("loon:v1") is not None
    assert credentials("ghcr.io/lab/loon:v1") is None  # nothing for that registry


def test_credentials_from_a_helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    helper = tmp_path / "bin" / "docker-credential-fake"
    helper.parent.mkdir()
    helper.write_text('#!/bin/sh\nread reg\n[ "$reg" = ghcr.io ] || exit 1\n'
                      'echo \'{"Username": "<token>", "Secret": "tok"}\'\n')
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{helper.parent}:/usr/bin:/bin")
    _config(tmp_path, monkeypatch, {"credHelpers": {"ghcr.io": "fake"}})
    assert credentials("ghcr.io/lab/loon:v1") == {"identitytoken": "tok",
                                                  "serveraddress": "ghcr.io"}
    assert credentials("127.0.0.1:5000/x") is None


def test_no_or_broken_config_is_anonymous(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "absent"))
    assert credentials("ghcr.io/a/b") is None
    (tmp_path / "config.json").write_text("{broken")
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    assert credentials("ghcr.io/a/b") is None


def test_pull_progress_counts_bytes_and_logs_layers(tmp_path: Path) -> None:
    from loon_supervisor.sinks.session import EventLog

    events = EventLog(tmp_path / "out.log")
    console = Console(file=open(tmp_path / "term", "w"), force_terminal=True)  # noqa: SIM115
    say = Reporter(events, console)
    with PullProgress(say, "r/x:1", console) as p:
        p.event({"status": "Pulling from r/x", "id": "1"})
        p.event({"status": "Downloading", "id": "a", "progressDetail": {"current": 5,
                                                                        "total": 10}})
        p.event({"status": "Downloading", "id": "b", "progressDetail": {"current": 1,
                                                                        "total": 30}})
        assert p.progress is not None and p.progress.tasks[0].completed == 6
        assert p.progress.tasks[0].total == 40
        p.event({"status": "Download complete", "id": "a"})
        p.event({"status": "Pull complete", "id": "a"})
        assert p.progress.tasks[0].completed == 11
        p.event({"status": "Status: Downloaded newer image for r/x:1"})
    events.close()
    log = (tmp_path / "out.log").read_text()
    assert "pull: a: Pull complete" in log and "pull: Status: Downloaded newer image" in log
    assert "Downloading" not in log  # progress goes to the bar, not a line per chunk
