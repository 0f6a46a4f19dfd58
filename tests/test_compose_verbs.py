"""`loon ps`, `restart` and `exec` against a real busybox deployment on the engine."""

from __future__ import annotations

import aiodocker
import anyio
import pytest

from tests.engine_helpers import containers_named
from tests.test_up_flow import ticker

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("engine")]

def started_at(name: str) -> str:
    async def read() -> str:
        async with aiodocker.Docker() as docker:
            info = await docker.containers.container(name).show()
            return str(info["State"]["StartedAt"])
    return anyio.run(read, backend="asyncio")


RESTART = ("pkill -f svc-{service}.sh; "
           "sh /app/svc-{service}.sh >> /var/log/loon/{service}.log 2>&1 < /dev/null &")


def test_ps_exec_restart(deploy) -> None:  # type: ignore[no-untyped-def]
    d = deploy({"alpha": ticker("alpha", "0.2"), "beta": ticker("beta", "0.2")},
               extra_labels={"org.loon.restart-command": RESTART,
                             "org.loon.workdir.alpha": "/app"})
    result = d.run("-d", timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr

    ps = d.loon("ps", "--name", d.name)
    assert ps.returncode == 0, ps.stderr
    assert d.name in ps.stdout and "running" in ps.stdout
    ps = d.loon("ps", "-c", str(d.config))  # the name comes from the config
    assert ps.returncode == 0 and d.name in ps.stdout

    ex = d.loon("exec", "-c", str(d.config), "alpha", "sh", "-c",
                'echo "$LOON_SERVICE $DATABASE_NAME $(pwd)"; echo oops >&2; exit 3')
    assert ex.returncode == 3
    assert ex.stdout.strip() == "alpha loon /app" and ex.stderr.strip() == "oops"
    ex = d.loon("exec", "--name", d.name, "gamma", "true")
    assert ex.returncode == 2 and "gamma is not a service" in ex.stderr

    before = containers_named(d.name)[0]
    started = started_at(d.name)
    r = d.loon("restart", "--name", d.name, "alpha")
    assert r.returncode == 0 and "alpha: restarted" in r.stdout, r.stdout + r.stderr
    r = d.loon("restart", "--name", d.name, "nope")
    assert r.returncode == 2

    r = d.loon("restart", "--name", d.name, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    after = containers_named(d.name)[0]
    assert after["Id"] == before["Id"] and after["State"] == "running"
    assert started_at(d.name) > started

    down = d.run("-D", timeout=120)
    assert down.returncode == 0
    r = d.loon("exec", "--name", d.name, "alpha", "true")
    assert r.returncode == 1 and "not running" in r.stderr


def test_verbs_without_an_engine_say_one_sentence(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("LOON_")}
    env["DOCKER_HOST"] = f"unix://{tmp_path}/none.sock"
    env["LOON_PROJECT_ROOT"] = str(tmp_path)
    for verb in (["ps"], ["restart"], ["exec", "server", "true"]):
        r = subprocess.run([sys.executable, "-m", "loon_supervisor", *verb], cwd=tmp_path,
                           env=env, capture_output=True, text=True, timeout=60)
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
