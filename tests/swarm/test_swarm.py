"""Swarm mode on a single-node swarm on loopback (a private dockerd of its own): a core
service and 3 Celery replicas from a busybox image honouring the contract; every task's
file byte-identical to what its container wrote, a killed task replaced in a new file with
nothing lost, `scale`, and teardown that leaves no service and no container."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, base_config
from tests.engine_helpers import wait_until
from tests.images import write_context
from tests.swarm.support import SwarmEngine

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("engine")]


@pytest.fixture
def swarm_engine() -> Iterator[SwarmEngine]:
    engine = SwarmEngine(Path(f"/tmp/lsw-{uuid.uuid4().hex[:6]}"))
    try:
        engine.start()
        yield engine
    finally:
        engine.destroy()


COUNT = 400


def paced(name: str) -> str:
    """Numbered lines at ~100/s, then quiet: long enough to kill a task mid-way."""
    return ("tag=$(cut -c1-8 /proc/sys/kernel/random/uuid); "
            f'seq 1 {COUNT} | while read n; do echo "{name} $tag $n"; usleep 10000; done; '
            "exec sleep 100000")


def archive(engine: SwarmEngine, cid: str, path: str) -> bytes:
    out = subprocess.run(["docker", "-H", engine.host, "cp", f"{cid}:{path}", "-"],
                         capture_output=True, check=True).stdout
    import io
    import tarfile
    with tarfile.open(fileobj=io.BytesIO(out)) as tar:
        member = tar.getmembers()[0]
        f = tar.extractfile(member)
        assert f is not None
        return f.read()


def test_swarm_scale_out_of_celery(swarm_engine: SwarmEngine, tmp_path: Path) -> None:
    name = f"loon-sw-{uuid.uuid4().hex[:6]}"
    ctx = write_context(tmp_path / "image", {"core": paced("core"), "celery": paced("celery")})
    config = tmp_path / "config.json"
    config.write_text(json.dumps(base_config(
        tmp_path / "data", containerName=name, imageTag=f"loon-test:{name}",
        imageDirectory=str(ctx), networkMode="host", buildNetworkMode="host",
        minioSourceUrl=None, stopTimeout=3, orchestrator="swarm", celeryReplicas=3),
        indent=2))
    project = tmp_path / "project"
    project.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOON_", "DOCKER_"))}
    env.update(DOCKER_HOST=swarm_engine.host, LOON_PROJECT_ROOT=str(project))
    proc = subprocess.Popen([sys.executable, str(ROOT / "build.py"), "--config-file",
                             str(config)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    out_log = project / "logs" / "latest" / "out.log"
    try:
        def up() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"build.py exited {proc.returncode}: {proc.stdout.read()}")
            return out_log.exists() and "Loon is up (swarm)" in out_log.read_text()
        wait_until(up, timeout=240)
        session = out_log.resolve().parent
        wait_until(lambda: len(list(session.glob("celery.*.log"))) == 3, timeout=60)
        # kill one Celery task's container mid-way: Swarm starts another in its slot
        tasks = json.loads(swarm_engine.docker(
            "service", "ps", f"{name}-celery", "--format", "{{json .}}", "--no-trunc"
        ).stdout.splitlines()[0])
        victim_task = tasks["ID"]
        cid = swarm_engine.docker("inspect", "--format",
                                  "{{.Status.ContainerStatus.ContainerID}}",
                                  victim_task).stdout.strip()
        time.sleep(1)
        swarm_engine.docker("kill", cid)
        wait_until(lambda: len(list(session.glob("celery.*.log"))) == 4, timeout=90)
        # every task's file equals what its container wrote (the dead one's included)
        def mismatches() -> list[str]:
            bad = []
            for c in swarm_engine.docker("ps", "-aq", "--filter",
                                         f"label=org.loon.deployment={name}").stdout.split():
                role = swarm_engine.docker("inspect", "--format",
                                           '{{index .Config.Labels "org.loon.swarm-role"}}',
                                           c).stdout.strip()
                program = "core" if role == "core" else "celery"
                inside = archive(swarm_engine, c, f"/var/log/loon/{program}.log")
                matches = [p for p in session.glob(f"{program}.*.log")
                           if p.read_bytes() == inside]
                killed = swarm_engine.docker("inspect", "--format", "{{.State.Running}}",
                                             c).stdout.strip() != "true"
                if len(matches) != 1 or not (killed or inside.endswith(f" {COUNT}\n".encode())):
                    sizes = {p.name: p.stat().st_size for p in session.glob(f"{program}.*.log")}
                    bad.append(f"{c[:12]} {program}: {len(inside)} B inside, host {sizes}")
            return bad

        def complete() -> bool:
            return not mismatches()
        try:
            wait_until(complete, timeout=120, interval=1)
        except AssertionError:
            raise AssertionError(f"{mismatches()}\n{out_log.read_text()[-3000:]}") from None
        status = subprocess.run([sys.executable, "-m", "loon_supervisor", "status",
                                 "--config-file", str(config)], env=env, cwd=tmp_path,
                                capture_output=True, text=True, timeout=60)
        assert f"{name}-celery" in status.stdout and status.returncode == 0, status.stdout
        scaled = subprocess.run([sys.executable, "-m", "loon_supervisor", "scale", "celery=1",
                                 "--config-file", str(config)], env=env, cwd=tmp_path,
                                capture_output=True, text=True, timeout=60)
        assert scaled.returncode == 0, scaled.stdout + scaled.stderr
        wait_until(lambda: swarm_engine.docker(
            "service", "ls", "--filter", f"name={name}-celery", "--format", "{{.Replicas}}"
        ).stdout.strip() == "1/1", timeout=60)
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, output
    assert swarm_engine.docker("service", "ls", "-q").stdout.strip() == ""
    wait_until(lambda: swarm_engine.docker("ps", "-aq").stdout.strip() == "", timeout=60)
