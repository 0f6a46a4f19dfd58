"""Issue 28's detached path on two nodes: `build.py -d` with four Celery replicas over a
manager and a worker (their own dockerds on 127.0.0.1 and 127.0.0.2, a registry on
loopback), the background logger killed with SIGKILL while every task is still writing,
`loon attach` continuing each file where it stopped, `loon scale celery=1` and back, and
`loon doctor` asking a worker on the other node whether it reaches the core's MariaDB and
Redis, and `loon down` leaving no service, container, volume or registry tag of the run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.engine_helpers import wait_until
from tests.swarm.support import SwarmEngine
from tests.swarm.test_swarm import archive
from tests.swarm.test_two_nodes import _project, registry, two_nodes  # noqa: F401

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("engine")]

LINES = 1200


def slow(name: str) -> str:
    """Numbered lines at ~50/s for ~25 s, then quiet: every task is still writing when the
    logger is killed and while nobody follows."""
    return ("tag=$(cut -c1-8 /proc/sys/kernel/random/uuid); "
            f'seq 1 {LINES} | while read n; do echo "{name} $tag $n"; usleep 20000; done; '
            "exec sleep 100000")


# The core stands in for MariaDB and Redis with listeners on their ports (busybox nc, every
# address of this machine: the core's network is the host's).
LISTENERS = ("nc -ll -p 3306 -e /bin/true & nc -ll -p 6379 -e /bin/true & "
             "echo $! > /tmp/redis.pid; ")


def reach(env: dict[str, str], cwd: Path, config: Path) -> list[dict[str, str]]:
    done = loon(env, cwd, "doctor", "--json", "--config-file", str(config))
    assert "Traceback" not in done.stderr, done.stderr
    return [c for c in json.loads(done.stdout)["checks"]
            if c["check"] == "reach from other nodes"]


def loon(env: dict[str, str], cwd: Path, *args: str, timeout: float = 240
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "loon_supervisor", *args], cwd=cwd,
                          env={**env, "COLUMNS": "200"}, capture_output=True, text=True,
                          timeout=timeout)


def containers(engine: SwarmEngine, name: str, *more: str) -> list[str]:
    return engine.docker("ps", "-q", *more, "--filter",
                         f"label=org.loon.deployment={name}").stdout.split()


def mismatches(nodes: tuple[SwarmEngine, ...], name: str, session: Path) -> list[str]:
    """Every task container's service file (running or stopped, on either node) equals
    exactly one host file, and a running one has written all its lines."""
    bad = []
    for engine in nodes:
        for cid in containers(engine, name, "-a"):
            role = engine.docker("inspect", "--format",
                                 '{{index .Config.Labels "org.loon.swarm-role"}}',
                                 cid).stdout.strip()
            program = "core" if role == "core" else "celery"
            try:
                inside = archive(engine, cid, f"/var/log/loon/{program}.log")
            except subprocess.CalledProcessError:
                bad.append(f"{cid[:12]}: no file yet")
                continue
            same = [p.name for p in session.glob(f"{program}.*.log") if p.read_bytes() == inside]
            running = engine.docker("inspect", "--format", "{{.State.Running}}",
                                    cid).stdout.strip() == "true"
            if len(same) != 1 or (running and not inside.endswith(f" {LINES}\n".encode())):
                sizes = {p.name: p.stat().st_size for p in session.glob(f"{program}.*.log")}
                bad.append(f"{cid[:12]} {program}: {len(inside)} B inside, host {sizes}")
    return bad


def test_detached_swarm_loses_nothing_across_a_killed_logger(
        two_nodes: tuple[SwarmEngine, SwarmEngine], registry: str,  # noqa: F811
        tmp_path: Path) -> None:
    manager, worker = two_nodes
    node = worker.docker("info", "--format", "{{.Swarm.NodeID}}").stdout.strip()
    name, config, env = _project(tmp_path, manager, registry, 4,
                                 {"core": LISTENERS + slow("core"), "celery": slow("celery")},
                                 swarmNodeEngines={node: worker.host})
    project = Path(env["LOON_PROJECT_ROOT"])
    up = subprocess.run([sys.executable, str(ROOT / "build.py"), "-d", "--config-file",
                         str(config)], cwd=tmp_path, env=env, capture_output=True, text=True,
                        timeout=400)
    said = up.stdout + up.stderr
    assert up.returncode == 0 and "Traceback" not in said, said
    assert "background logger, pid" in said, said
    session = (project / "logs" / "latest").resolve()
    out_log = session / "out.log"
    try:
        # Swarm spread the four Celery tasks over both nodes; the core stayed on the manager
        celery = ("--filter", "label=org.loon.swarm-role=celery")
        wait_until(lambda: len(containers(manager, name, *celery))
                   + len(containers(worker, name, *celery)) == 4, timeout=120, interval=1)
        assert containers(worker, name, *celery) and containers(manager, name, *celery)
        assert not containers(worker, name, "--filter", "label=org.loon.swarm-role=core")

        # kill -9 the logger while every task writes; nobody follows for two seconds
        lock = project / ".build-files" / f"state.{name}.lock"
        pid = int(lock.read_text().strip())
        wait_until(lambda: "attached to every task" in out_log.read_text(), timeout=30)
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not Path(f"/proc/{pid}").exists(), timeout=10)
        status = loon(env, tmp_path, "status", "--config-file", str(config))
        assert "nobody follows them now" in status.stdout, status.stdout + status.stderr
        time.sleep(2)
        attached = loon(env, tmp_path, "attach", "--config-file", str(config))
        assert attached.returncode == 0, attached.stdout + attached.stderr
        assert "re-attached" in attached.stdout, attached.stdout
        status = loon(env, tmp_path, "status", "--config-file", str(config))
        assert "task logs: followed by pid" in status.stdout, status.stdout
        wait_until(lambda: not mismatches(two_nodes, name, session), timeout=150, interval=2,
                   message=lambda: f"{mismatches(two_nodes, name, session)}\n"
                   f"{out_log.read_text()[-3000:]}")
        assert "resuming task celery." in out_log.read_text()

        # the workers were told where the core is (this loopback swarm's manager address),
        # with the broker's password; the core binds there too; no password is printed
        remote = containers(worker, name, *celery)[0]
        worker_env = worker.docker("inspect", "--format", "{{json .Config.Env}}", remote).stdout
        core_cid = containers(manager, name, "--filter", "label=org.loon.swarm-role=core")[0]
        core_env = manager.docker("inspect", "--format", "{{json .Config.Env}}",
                                  core_cid).stdout
        password = next(v.split("=", 1)[1] for v in json.loads(core_env)
                        if v.startswith("REDIS_PASSWORD="))
        assert len(password) >= 32
        assert f"redis://:{password}@127.0.0.1:6379/0" in worker_env, worker_env
        assert '"DATABASE_HOST=127.0.0.1"' in worker_env, worker_env
        assert '"LOON_BIND_ADDRESS=127.0.0.1"' in core_env, core_env
        assert password not in said and password not in out_log.read_text()
        # `loon doctor`: each worker task on the other node reaches both, then not Redis
        verdicts = reach(env, tmp_path, config)
        assert verdicts and all(v["result"] == "pass" for v in verdicts), verdicts
        assert len(verdicts) == len(containers(worker, name, *celery)), verdicts
        manager.docker("exec", core_cid, "sh", "-c", "kill $(cat /tmp/redis.pid)")
        verdicts = reach(env, tmp_path, config)
        assert verdicts and all(v["result"] == "fail" for v in verdicts), verdicts
        assert "cannot reach Redis at 127.0.0.1:6379" in verdicts[0]["detail"], verdicts
        assert "MariaDB" not in verdicts[0]["detail"], verdicts

        # scale to one worker and back: the stopped tasks' files complete, the new ones
        # get files of their own
        scaled = loon(env, tmp_path, "scale", "celery=1", "--config-file", str(config))
        assert scaled.returncode == 0, scaled.stdout + scaled.stderr
        wait_until(lambda: len(containers(manager, name, *celery))
                   + len(containers(worker, name, *celery)) == 1, timeout=120, interval=1)
        scaled = loon(env, tmp_path, "scale", "celery=4", "--config-file", str(config))
        assert scaled.returncode == 0, scaled.stdout + scaled.stderr
        wait_until(lambda: len(containers(manager, name, *celery))
                   + len(containers(worker, name, *celery)) == 4, timeout=120, interval=1)
        wait_until(lambda: len(list(session.glob("celery.*.log"))) == 7, timeout=60,
                   message=lambda: sorted(p.name for p in session.glob("*.log")))
        wait_until(lambda: not mismatches(two_nodes, name, session), timeout=150, interval=2,
                   message=lambda: str(mismatches(two_nodes, name, session)))
    finally:
        down = loon(env, tmp_path, "down", "--config-file", str(config), timeout=400)
    assert down.returncode == 0, down.stdout + down.stderr
    assert manager.docker("service", "ls", "-q").stdout.strip() == ""
    for engine in two_nodes:
        wait_until(lambda: not containers(engine, name, "-a"), timeout=60)  # noqa: B023
        assert engine.docker("volume", "ls", "-q").stdout.split() == [], engine.host
        tags = engine.docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
        assert not [t for t in tags if t.startswith(registry)], (engine.host, tags)
    assert not Path(f"/proc/{pid}").exists()
    assert "Traceback" not in out_log.read_text()
