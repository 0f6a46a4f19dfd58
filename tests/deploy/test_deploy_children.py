"""Issue 26, item 5: a hung ``git fetch`` (a ``core.sshCommand`` that sleeps, so nothing
leaves the machine) stopped by DELETE, by the deploy timeout and by SIGTERM to the server
leaves no process behind. Processes are found by a marker in their environment, which git
hands down to everything it starts."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from loon_supervisor.deploy import DeployContext
from loon_supervisor.deploy.runner import update_working_copy
from tests.deploy.support import (
    StubServer,
    call,
    make_settings,
    new_token,
    running_server,
    wait_terminal,
)

pytestmark = pytest.mark.anyio


def _marked(marker: str) -> list[int]:
    """Live (non-zombie) processes whose environment holds the marker."""
    pids = []
    needle = f"LOON_TEST_MARKER={marker}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    pids.append(int(entry.name))
        except OSError:
            continue
    return pids


@pytest.fixture
def hung_remote(tmp_path: Path) -> Iterator[tuple[Path, Path, str]]:
    """A working copy on main whose origin is an ssh URL served by a script that hangs."""
    work = tmp_path / "work"
    started = tmp_path / "ssh-started"
    fake_ssh = tmp_path / "fake-ssh"
    fake_ssh.write_text(f"#!/bin/sh\necho $$ >> {started}\nsleep 300\n")
    fake_ssh.chmod(0o755)
    git = ["git", "-C", str(work)]
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    (work / "f").write_text("x\n")
    for args in (["add", "f"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm",
                                "one"],
                 ["remote", "add", "origin", "ssh://git@deploy.invalid/repo.git"],
                 ["config", "core.sshCommand", str(fake_ssh)]):
        subprocess.run([*git, *args], check=True)
    marker = uuid.uuid4().hex
    yield work, started, marker
    for pid in _marked(marker):  # never leave a sleeper behind, even when a test fails
        os.kill(pid, 9)


async def git_step(ctx: DeployContext) -> None:
    await update_working_copy(ctx)


async def _wait_for(path: Path) -> None:
    with anyio.fail_after(30):
        while not path.exists():
            await anyio.sleep(0.05)


async def _none_left(marker: str) -> list[int]:
    """Killing is asynchronous for the group's members: allow them a few seconds to go."""
    with anyio.move_on_after(15):
        while _marked(marker):
            await anyio.sleep(0.1)
    return _marked(marker)


async def test_delete_stops_a_hung_git_fetch_and_all_it_started(
        tmp_path: Path, hung_remote: tuple[Path, Path, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    work, started, marker = hung_remote
    monkeypatch.setenv("LOON_TEST_MARKER", marker)
    token = new_token()
    settings = make_settings(tmp_path, token, git_branch="main", repo_dir=work, kill_grace=2)
    async with running_server(settings, git_step) as srv:
        ans = await call("POST", f"{srv.url}/deploy", token=token)
        await _wait_for(started)
        assert len(_marked(marker)) >= 3  # git pull, git fetch, the ssh script, sleep
        assert (await call("DELETE", f"{srv.url}/deploy/{ans.body['id']}",
                           token=token)).status == 202
        done = await wait_terminal(srv.url, ans.body["id"], token)
        assert done["status"] == "cancelled"
        assert await _none_left(marker) == []


async def test_the_deploy_timeout_stops_a_hung_git_fetch_and_all_it_started(
        tmp_path: Path, hung_remote: tuple[Path, Path, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    work, started, marker = hung_remote
    monkeypatch.setenv("LOON_TEST_MARKER", marker)
    token = new_token()
    settings = make_settings(tmp_path, token, git_branch="main", repo_dir=work,
                             deploy_timeout=3, kill_grace=2)
    async with running_server(settings, git_step) as srv:
        ans = await call("POST", f"{srv.url}/deploy", token=token)
        await _wait_for(started)
        assert len(_marked(marker)) >= 3
        done = await wait_terminal(srv.url, ans.body["id"], token)
        assert done["status"] == "failed" and "deploy timeout" in done["reason"]
        assert await _none_left(marker) == []


async def test_sigterm_to_the_server_stops_a_hung_git_fetch_and_all_it_started(
        tmp_path: Path, hung_remote: tuple[Path, Path, str]) -> None:
    work, started, marker = hung_remote
    token = new_token()
    env = dict(os.environ, LOON_TEST_MARKER=marker)
    server = StubServer(tmp_path, "git", token, ["--git-branch", "main", "--repo-dir",
                                                 str(work), "--kill-grace", "2"], env=env)
    with server as srv:
        ans = await call("POST", f"{srv.url}/deploy", token=token)
        assert ans.status == 202
        await _wait_for(started)
        assert len(_marked(marker)) >= 4  # the server too
    assert server.returncode == 0, server.stderr()[-2000:]
    assert await _none_left(marker) == []
    status = (server.logs_root / ans.body["id"] / "status.json").read_text()
    assert "the deploy server stopped while this deploy was running" in status
