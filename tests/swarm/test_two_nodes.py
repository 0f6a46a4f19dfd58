"""Issue 28 on two nodes: a manager and a worker, two private dockerds on their own
loopback addresses (127.0.0.1 and 127.0.0.2) joined into one Swarm. Without a registry
`up` refuses a swarm of several nodes (the worker could not pull an image built on the
manager); with one, the worker's engine pulls the pushed digest and runs the same bytes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, base_config
from tests.engine_helpers import wait_until
from tests.images import write_context
from tests.swarm.support import SwarmEngine, wait_swarm_up
from tests.swarm.test_registry import serve_registry
from tests.swarm.test_swarm import COUNT, archive, paced

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("engine")]


@pytest.fixture
def two_nodes() -> Iterator[tuple[SwarmEngine, SwarmEngine]]:
    tag = uuid.uuid4().hex[:6]
    manager = SwarmEngine(Path(f"/tmp/lsw-{tag}m"))
    worker = SwarmEngine(Path(f"/tmp/lsw-{tag}w"), address="127.0.0.2")
    try:
        manager.start()
        worker.start(init=False)
        worker.join(manager)
        yield manager, worker
    finally:
        worker.destroy()
        manager.destroy()
    # torn down: no mount and no process of either node is left on this machine
    for node in (manager, worker):
        mounts = [line for line in Path("/proc/mounts").read_text().splitlines()
                  if str(node.base) in line]
        assert not mounts, mounts
        left = subprocess.run(["pgrep", "-f", str(node.base)], capture_output=True, text=True)
        assert not left.stdout.split(), left.stdout


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[str]:
    yield from serve_registry(tmp_path)


def _project(tmp_path: Path, manager: SwarmEngine, registry: str | None, replicas: int,
             programs: dict[str, str] | None = None, **more: object
             ) -> tuple[str, Path, dict[str, str]]:
    name = f"loon-2n-{uuid.uuid4().hex[:6]}"
    ctx = write_context(tmp_path / "image", programs or {
        "core": "echo core up; exec sleep 100000",
        "celery": "echo celery up; exec sleep 100000"})
    config = tmp_path / "config.json"
    settings = dict(containerName=name, imageTag=f"loon-test:{name}", imageDirectory=str(ctx),
                    networkMode="host", buildNetworkMode="host", minioSourceUrl=None,
                    stopTimeout=3, orchestrator="swarm", celeryReplicas=replicas)
    if registry is not None:
        settings["imageRegistry"] = registry
    settings.update(more)
    config.write_text(json.dumps(base_config(tmp_path / "data", **settings), indent=2))
    project = tmp_path / "project"
    project.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOON_", "DOCKER_"))}
    env.update(DOCKER_HOST=manager.host, LOON_PROJECT_ROOT=str(project),
               DOCKER_CONFIG=str(tmp_path / "docker-config"))
    return name, config, env


def test_several_nodes_without_a_registry_are_refused(two_nodes: tuple[SwarmEngine, SwarmEngine],
                                                      tmp_path: Path) -> None:
    manager, _ = two_nodes
    name, config, env = _project(tmp_path, manager, None, 1)
    done = subprocess.run([sys.executable, str(ROOT / "build.py"), "--config-file",
                           str(config)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    said = done.stdout + done.stderr
    assert done.returncode == 2 and "Traceback" not in said, said
    assert "imageRegistry" in said and "several nodes" in said, said
    assert manager.docker("service", "ls", "-q").stdout.strip() == ""


def test_the_worker_runs_the_pushed_digest(two_nodes: tuple[SwarmEngine, SwarmEngine],
                                           registry: str, tmp_path: Path) -> None:
    manager, worker = two_nodes
    node = worker.docker("info", "--format", "{{.Swarm.NodeID}}").stdout.strip()
    name, config, env = _project(tmp_path, manager, registry, 2,  # an engine that is not there
                                 swarmNodeEngines={node: f"unix://{tmp_path}/none.sock"})
    project = Path(env["LOON_PROJECT_ROOT"])
    proc = subprocess.Popen([sys.executable, str(ROOT / "build.py"), "--config-file",
                             str(config)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    out_log = project / "logs" / "latest" / "out.log"
    try:
        wait_swarm_up(proc, out_log)
        spec_image = manager.docker("service", "inspect", f"{name}-celery", "--format",
                                    "{{.Spec.TaskTemplate.ContainerSpec.Image}}").stdout.strip()
        assert f"{registry}/loon-test:" in spec_image and "@sha256:" in spec_image

        # Swarm spreads the two Celery tasks over the nodes: one runs on the worker, from
        # the image its own engine pulled from the registry, with the manager's image ID.
        def on_worker() -> list[str]:
            return worker.docker("ps", "-q", "--filter",
                                 f"label=org.loon.deployment={name}").stdout.split()
        wait_until(lambda: bool(on_worker()), timeout=120, interval=1)
        image_ids = {engine.docker("inspect", "--format", "{{.Image}}", cid).stdout.strip()
                     for engine, cids in ((worker, on_worker()), (manager, manager.docker(
                         "ps", "-q", "--filter", f"label=org.loon.deployment={name}"
                     ).stdout.split())) for cid in cids}
        assert len(image_ids) == 1, image_ids
        # the core (pinned to the labelled node: the manager) runs there, never on the worker
        roles = [worker.docker("inspect", "--format",
                               '{{index .Config.Labels "org.loon.swarm-role"}}', c
                               ).stdout.strip() for c in on_worker()]
        assert "core" not in roles, roles
        wait_until(lambda: "some tasks run on other nodes" in out_log.read_text(), timeout=30)
        assert f"node {node}'s engine does not answer" in out_log.read_text()
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, output
    assert manager.docker("service", "ls", "-q").stdout.strip() == ""
    wait_until(lambda: not on_worker() and not manager.docker(
        "ps", "-q", "--filter", f"label=org.loon.deployment={name}").stdout.split(),
        timeout=60)


def test_tasks_on_the_worker_are_followed_through_its_engine(
        two_nodes: tuple[SwarmEngine, SwarmEngine], registry: str, tmp_path: Path) -> None:
    """swarmNodeEngines names the worker's engine: its Celery task gets a file like a local
    one, byte-identical to what the task wrote, completed when Ctrl+C stops the tasks."""
    manager, worker = two_nodes
    # by node ID: on loopback both nodes share the hostname, and the manager sees the
    # worker's connection come from 127.0.0.1 (its Status.Addr), so only the ID tells them apart
    node = worker.docker("info", "--format", "{{.Swarm.NodeID}}").stdout.strip()
    name, config, env = _project(tmp_path, manager, registry, 2,
                                 {"core": paced("core"), "celery": paced("celery")},
                                 swarmNodeEngines={node: worker.host})
    project = Path(env["LOON_PROJECT_ROOT"])
    proc = subprocess.Popen([sys.executable, str(ROOT / "build.py"), "--config-file",
                             str(config)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    out_log = project / "logs" / "latest" / "out.log"
    try:
        wait_swarm_up(proc, out_log)
        session = out_log.resolve().parent
        wait_until(lambda: len(list(session.glob("celery.*.log"))) == 2, timeout=90)
        remote = worker.docker("ps", "-q", "--filter",
                               f"label=org.loon.deployment={name}").stdout.split()
        assert len(remote) == 1, remote
        inside = b""

        def same() -> bool:
            nonlocal inside
            inside = archive(worker, remote[0], "/var/log/loon/celery.log")
            return inside.endswith(f" {COUNT}\n".encode()) and any(
                p.read_bytes() == inside for p in session.glob("celery.*.log"))
        wait_until(same, timeout=90, interval=1)
        text = out_log.read_text()
        assert f"through its engine at {worker.host}" in text, text[-2000:]
        assert "not followed" not in text, text[-2000:]
        # `loon status`: each task with its node, the two nodes told apart by ID although
        # both are called after this machine
        status = subprocess.run([sys.executable, "-m", "loon_supervisor", "status",
                                 "--config-file", str(config)], env={**env, "COLUMNS": "200"},
                                cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert status.returncode == 0, status.stdout + status.stderr
        assert f"({node[:12]})" in status.stdout, status.stdout
        celery_rows = [line for line in status.stdout.splitlines() if f"{name}-celery" in line]
        assert len(celery_rows) == 2 and all("running" in r for r in celery_rows), status.stdout
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, output
    assert sum(p.read_bytes() == inside for p in session.glob("celery.*.log")) == 1
    assert manager.docker("service", "ls", "-q").stdout.strip() == ""


def test_a_worker_node_that_dies_and_comes_back(two_nodes: tuple[SwarmEngine, SwarmEngine],
                                                registry: str, tmp_path: Path) -> None:
    """The worker's engine stops mid-run: out.log says the node went, Swarm moves its Celery
    task to the manager (a new file), the other task's file loses nothing; the engine comes
    back and rejoins, and no task gets a second follower."""
    manager, worker = two_nodes
    node = worker.docker("info", "--format", "{{.Swarm.NodeID}}").stdout.strip()
    name, config, env = _project(tmp_path, manager, registry, 2,
                                 {"core": paced("core"), "celery": paced("celery")},
                                 swarmNodeEngines={node: worker.host})
    project = Path(env["LOON_PROJECT_ROOT"])
    proc = subprocess.Popen([sys.executable, str(ROOT / "build.py"), "--config-file",
                             str(config)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    out_log = project / "logs" / "latest" / "out.log"

    def local() -> list[str]:
        return manager.docker("ps", "-q", "--filter",
                              f"label=org.loon.deployment={name}",
                              "--filter", "label=org.loon.swarm-role=celery").stdout.split()
    try:
        wait_swarm_up(proc, out_log)
        session = out_log.resolve().parent
        wait_until(lambda: len(list(session.glob("celery.*.log"))) == 2, timeout=90)
        assert len(local()) == 1
        survivor = local()[0]
        done = f" {COUNT}\n".encode()
        wait_until(lambda: all(p.read_bytes().endswith(done)
                               for p in session.glob("celery.*.log")), timeout=90, interval=1)
        before = {p.name: p.read_bytes() for p in session.glob("celery.*.log")}

        worker.stop_daemon()
        wait_until(lambda: "is down" in out_log.read_text(), timeout=120, interval=1)
        # Swarm starts the lost task again on the manager: a third file, complete in time
        wait_until(lambda: len(list(session.glob("celery.*.log"))) == 3, timeout=120)
        wait_until(lambda: all(p.read_bytes().endswith(done)
                               for p in session.glob("celery.*.log")), timeout=90, interval=1)
        for file, data in before.items():  # neither earlier file lost or gained a byte
            assert (session / file).read_bytes() == data, file
        assert archive(manager, survivor, "/var/log/loon/celery.log") in before.values()

        worker.launch()  # the same engine again: it rejoins the swarm by itself
        wait_until(lambda: "is back" in out_log.read_text(), timeout=120, interval=1)
        import time
        time.sleep(3)  # a few watch rounds: a duplicate follower would show by now
        text = out_log.read_text()
        assert len(list(session.glob("celery.*.log"))) == 3, sorted(
            p.name for p in session.glob("*.log"))
        assert text.count("following task celery.") == 3, text[-3000:]
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, output
    assert manager.docker("service", "ls", "-q").stdout.strip() == ""
