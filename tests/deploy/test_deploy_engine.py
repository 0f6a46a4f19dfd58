"""Deploys against the real engine: the server started as the seed starts it
(``python .build-files/deploy-server.py``), the real ``down``/``up``, a tiny test image."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from loon_supervisor.deploy import load_settings
from tests.conftest import ROOT, base_config, unique, write_config
from tests.deploy.support import (
    SCRIPT,
    call,
    files_containing,
    new_token,
    running_server,
    wait_terminal,
    write_secrets,
)
from tests.images import write_context

pytestmark = [pytest.mark.engine, pytest.mark.anyio]

WEB = "i=0; while :; do i=$((i+1)); echo web line $i; sleep 0.1; done"


def docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=60)


def container_state(name: str) -> dict | None:
    result = docker("inspect", name)
    if result.returncode != 0:
        return None
    return json.loads(result.stdout)[0]


@pytest.fixture
def deployment(project: Path, tmp_path: Path, engine: None) -> Iterator[tuple[Path, str]]:
    name = unique("loon-deploy-test")
    image = write_context(tmp_path / "image", {"web": WEB})
    data = tmp_path / "data"
    config = write_config(tmp_path / "config.json", base_config(
        data, containerName=name, imageTag=f"loon-deploy-test:{name}",
        imageDirectory=str(image), networkMode="none", buildNetworkMode="host",
        minioSourceUrl=None, stopTimeout=2))
    try:
        yield config, name
    finally:
        from loon_supervisor.verbs.dispatch import run_sync
        from loon_supervisor.verbs.down import down

        run_sync(down, name)
        docker("rm", "-f", name)
        docker("rmi", "-f", f"loon-deploy-test:{name}")


async def _wait_listening(stderr_file: Path, proc: subprocess.Popen[bytes]) -> str:
    with anyio.fail_after(30):
        while True:
            text = stderr_file.read_text(errors="replace")
            m = re.search(r"listening on (http://\S+)", text)
            if m:
                return m.group(1)
            if proc.poll() is not None:
                raise AssertionError(f"server exited with {proc.returncode}:\n{text}")
            await anyio.sleep(0.05)


def _deploy_log(project: Path, deploy_id: str) -> str:
    path = project / "logs" / "deploys" / deploy_id / "deploy.log"
    return path.read_text(errors="replace") if path.exists() else "(no deploy.log)"


async def test_deploy_through_the_seed_entry_point(
        deployment: tuple[Path, str], project: Path, tmp_path: Path) -> None:
    config, name = deployment
    token = new_token()
    env_file = write_secrets(tmp_path / "secrets" / ".env.secrets", token)
    out_file, err_file = tmp_path / "server.out", tmp_path / "server.err"
    with out_file.open("wb") as out, err_file.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, str(SCRIPT), "--env-file", str(env_file), "--host", "127.0.0.1",
             "--port", "0", "--config-file", str(config)],
            stdout=out, stderr=err, cwd=SCRIPT.parent, env=dict(os.environ))
    try:
        base = await _wait_listening(err_file, proc)
        assert (await call("POST", f"{base}/deploy")).status == 401
        assert (await call("POST", f"{base}/deploy", raw_auth=token[::-1])).status == 403

        first = await call("POST", f"{base}/deploy", token=token)
        assert first.status == 202, first.text
        deploy_id = first.body["id"]
        busy = await call("POST", f"{base}/deploy", raw_auth=token)
        assert busy.status == 409 and busy.body["running"] == deploy_id

        done = await wait_terminal(base, deploy_id, token, timeout=180)
        assert done["status"] == "succeeded", (done, _deploy_log(project, deploy_id))
        state = container_state(name)
        assert state is not None and state["State"]["Running"], state
        first_cid = state["Id"]

        # up ran as a child process; its output (naming the session) is in deploy.log.
        deploy_dir = project / "logs" / "deploys" / deploy_id
        assert Path(done["logDir"]) == deploy_dir
        text = _deploy_log(project, deploy_id)
        assert "starting the deployment (detached)" in text and "$ loon up -d" in text
        session = Path(re.search(r"logs are in (\S+)", text).group(1))  # type: ignore[union-attr]
        with anyio.fail_after(20):
            while not ((session / "web.log").exists()
                       and "web line 5" in (session / "web.log").read_text()):
                await anyio.sleep(0.1)

        # A second deploy tears the first container down and starts a new one.
        second = await call("POST", f"{base}/deploy", raw_auth=token)
        assert second.status == 202, second.text
        done2 = await wait_terminal(base, second.body["id"], token, timeout=180)
        assert done2["status"] == "succeeded", _deploy_log(project, second.body["id"])
        state2 = container_state(name)
        assert state2 is not None and state2["State"]["Running"]
        assert state2["Id"] != first_cid

        proc.send_signal(signal.SIGTERM)
        with anyio.fail_after(30):
            while proc.poll() is None:
                await anyio.sleep(0.05)
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = err_file.read_text(errors="replace")
    assert f"deploy {deploy_id} succeeded" in stderr
    assert "received SIGTERM: stopping" in stderr
    # The token is never in the server's output nor in any file the deploys wrote.
    everything = out_file.read_bytes() + err_file.read_bytes()
    for needle in (token, token[:12], token[::-1]):
        assert needle.encode() not in everything
        assert files_containing(project, needle) == []
        assert files_containing(tmp_path / "data", needle) == []


async def test_git_pull_failure_fails_the_deploy(
        deployment: tuple[Path, str], project: Path, tmp_path: Path) -> None:
    config, name = deployment
    repo = tmp_path / "repo"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "-C", str(repo)]
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "one"], check=True)
    subprocess.run([*git, "remote", "add", "origin", str(tmp_path / "gone.git")], check=True)
    token = new_token()
    env_file = write_secrets(tmp_path / "s" / ".env.secrets", token)
    settings = load_settings(env_file, host="127.0.0.1", port=0, config_file=config,
                             git_branch="main", repo_dir=repo, logs_root=tmp_path / "deploys")
    async with running_server(settings) as srv:  # the real supervisor step
        ans = await call("POST", f"{srv.url}/deploy", token=token)
        done = await wait_terminal(srv.url, ans.body["id"], token, timeout=120)
    assert done["status"] == "failed"
    assert done["reason"].startswith("git pull of branch main failed (exit code 1): "), done
    assert "gone.git" in done["reason"] or "repository" in done["reason"]
    assert container_state(name) is None  # up never ran
    log_text = (tmp_path / "deploys" / ans.body["id"] / "deploy.log").read_text()
    assert "git -C" in log_text and "pull --ff-only origin main" in log_text


async def test_invalid_config_fails_the_deploy_with_reason(
        deployment: tuple[Path, str], project: Path, tmp_path: Path) -> None:
    config, name = deployment
    data = json.loads(config.read_text())
    data["generalSettings"]["useHttp"] = "yes"  # wrong JSON type: up exits with 2
    config.write_text(json.dumps(data))
    token = new_token()
    env_file = write_secrets(tmp_path / "s" / ".env.secrets", token)
    settings = load_settings(env_file, host="127.0.0.1", port=0, config_file=config,
                             logs_root=tmp_path / "deploys")
    async with running_server(settings) as srv:
        ans = await call("POST", f"{srv.url}/deploy", token=token)
        done = await wait_terminal(srv.url, ans.body["id"], token, timeout=120)
    assert done["status"] == "failed"
    assert done["reason"] == ("starting the deployment failed: up exited with code 2 "
                              "(configuration error); see deploy.log")
    log_text = (tmp_path / "deploys" / ans.body["id"] / "deploy.log").read_text()
    assert "generalSettings.useHttp" in log_text  # what up printed is in the deploy's log
    assert container_state(name) is None


async def test_sigterm_during_a_deploy_stops_the_server(
        deployment: tuple[Path, str], project: Path, tmp_path: Path) -> None:
    """While ``up`` runs it owns SIGTERM; the deploy is recorded as failed and the server
    still stops (it does not keep serving with the signal lost)."""
    config, name = deployment
    token = new_token()
    env_file = write_secrets(tmp_path / "secrets" / ".env.secrets", token)
    err_file = tmp_path / "server.err"
    with err_file.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, str(SCRIPT), "--env-file", str(env_file), "--host", "127.0.0.1",
             "--port", "0", "--config-file", str(config)],
            stdout=subprocess.DEVNULL, stderr=err, cwd=tmp_path, env=dict(os.environ))
    try:
        base = await _wait_listening(err_file, proc)
        ans = await call("POST", f"{base}/deploy", token=token)
        assert ans.status == 202
        with anyio.fail_after(60):
            while "starting the deployment" not in _deploy_log(project, ans.body["id"]):
                await anyio.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        with anyio.fail_after(60):
            while proc.poll() is None:
                await anyio.sleep(0.05)
        assert proc.returncode == 0, err_file.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    status = json.loads((project / "logs" / "deploys" / ans.body["id"] / "status.json")
                        .read_text())
    assert status["status"] == "failed", (status, err_file.read_text())
    assert "SIGTERM" in status["reason"] or "stopped" in status["reason"]


async def test_hung_engine_fails_at_the_deploy_timeout_then_accepts_again(
        deployment: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An engine socket that accepts and never answers: the deploy ends as failed at the
    timeout (its children killed) and the next POST is accepted."""
    import socket
    import threading

    config, _ = deployment
    path = tmp_path / "hung.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept_forever() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
    token = new_token()
    env_file = write_secrets(tmp_path / "s" / ".env.secrets", token)
    settings = load_settings(env_file, host="127.0.0.1", port=0, config_file=config,
                             logs_root=tmp_path / "deploys", deploy_timeout=3.0, kill_grace=1.0)
    try:
        async with running_server(settings) as srv:
            ans = await call("POST", f"{srv.url}/deploy", token=token)
            assert ans.status == 202
            done = await wait_terminal(srv.url, ans.body["id"], token, timeout=30)
            assert done["status"] == "failed", done
            assert done["reason"] == "did not finish within the deploy timeout of 3 s"
            assert held, "the loon child never reached the engine socket"
            again = await call("POST", f"{srv.url}/deploy", token=token)
            assert again.status == 202, again.text
            gone = await call("DELETE", f"{srv.url}/deploy/{again.body['id']}", token=token)
            assert gone.status == 202
            assert (await wait_terminal(srv.url, again.body["id"], token, timeout=30)
                    )["status"] == "cancelled"
    finally:
        stop.set()
        thread.join()
        listener.close()
        for s in held:
            s.close()


async def test_delete_cancels_a_running_deploy_and_leaves_no_container(
        deployment: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Cancelled while ``up`` waits to start the container: the child's process group is
    killed, so no container appears even after up's pause would have ended."""
    config, name = deployment
    monkeypatch.setenv("LOON_TEST_DELAY_STARTING", "4")  # tests/hooks/sitecustomize.py
    monkeypatch.setenv("PYTHONPATH", str(ROOT / "tests" / "hooks"))
    token = new_token()
    env_file = write_secrets(tmp_path / "s" / ".env.secrets", token)
    logs = tmp_path / "deploys"
    settings = load_settings(env_file, host="127.0.0.1", port=0, config_file=config,
                             logs_root=logs, kill_grace=2.0)
    async with running_server(settings) as srv:
        ans = await call("POST", f"{srv.url}/deploy", token=token)
        assert ans.status == 202
        deploy_id = ans.body["id"]
        log_file = logs / deploy_id / "deploy.log"
        with anyio.fail_after(120):  # past the build: the child pauses before the start
            while (await call("GET", f"{srv.url}/deploy/{deploy_id}", token=token)
                   ).body["phase"] != "swapping":
                await anyio.sleep(0.05)
        await anyio.sleep(0.5)
        assert (await call("GET", f"{srv.url}/deploy/{deploy_id}", token=token)
                ).body["status"] == "running"
        gone = await call("DELETE", f"{srv.url}/deploy/{deploy_id}", token=token)
        assert gone.status == 202, gone.text
        done = await wait_terminal(srv.url, deploy_id, token, timeout=60)
        assert done["status"] == "cancelled" and done["reason"] == "cancelled by DELETE"
        again = await call("DELETE", f"{srv.url}/deploy/{deploy_id}", token=token)
        assert again.status == 409
        await anyio.sleep(5)  # past the pause a surviving up would have used to start it
        assert container_state(name) is None
        text = log_file.read_text()
        assert "stopping loon up" in text and "cleanup done" in text
        nxt = await call("POST", f"{srv.url}/deploy", token=token)
        assert nxt.status == 202
        await call("DELETE", f"{srv.url}/deploy/{nxt.body['id']}", token=token)
        await wait_terminal(srv.url, nxt.body["id"], token, timeout=60)


async def test_delete_during_the_build_leaves_the_old_version_serving(
        deployment: tuple[Path, str], tmp_path: Path) -> None:
    """The redeploy builds first: cancelled during the build, nothing was stopped, and the
    container of the previous deploy is the same one, still running."""
    config, name = deployment
    token = new_token()
    env_file = write_secrets(tmp_path / "s" / ".env.secrets", token)
    settings = load_settings(env_file, host="127.0.0.1", port=0, config_file=config,
                             logs_root=tmp_path / "deploys", kill_grace=2.0)
    async with running_server(settings) as srv:
        first = await call("POST", f"{srv.url}/deploy", token=token)
        done = await wait_terminal(srv.url, first.body["id"], token, timeout=180)
        assert done["status"] == "succeeded", done
        before = container_state(name)
        assert before is not None and before["State"]["Running"]
        write_context(tmp_path / "image", {"web": WEB}, build_step="sleep 60")
        ans = await call("POST", f"{srv.url}/deploy", token=token)
        deploy_id = ans.body["id"]
        log_file = tmp_path / "deploys" / deploy_id / "deploy.log"
        with anyio.fail_after(120):
            while "building version" not in (log_file.read_text() if log_file.exists()
                                             else ""):
                await anyio.sleep(0.05)
        await anyio.sleep(3)  # inside the build's 60 s step
        assert (await call("GET", f"{srv.url}/deploy/{deploy_id}", token=token)
                ).body["phase"] == "building"
        assert (await call("DELETE", f"{srv.url}/deploy/{deploy_id}", token=token)
                ).status == 202
        done = await wait_terminal(srv.url, deploy_id, token, timeout=60)
        assert done["status"] == "cancelled" and done["phase"] == "building", done
    after = container_state(name)
    assert after is not None and after["State"]["Running"] and after["Id"] == before["Id"]
    assert "stopped before the swap: nothing was stopped" in log_file.read_text()
