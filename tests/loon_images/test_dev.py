"""`loon dev` with the real Loon image: only the backing services, reachable from the host
on 127.0.0.1, and an env file a host-run Loon server can use as its .env.

One dev run (module scope) serves both tests: the services themselves, and what the run
says about them (issue 29, item 10: dev.env agrees with the image and with `loon status`,
the closing line names what runs instead of a URL nothing serves, status marks what dev mode
leaves out). The config expects MinIO but the build leaves it out (its URL refuses), the
case the issue found wrong: dev.env said MINIO_ENABLED=true with an endpoint nothing serves.
"""

from __future__ import annotations

import json
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pymysql
import pytest
from dotenv import dotenv_values

from tests.loon_images.support import (
    HTTP_PORT,
    HTTPS_PORT,
    Loon,
    deploy,
    exec_in,
    port_open,
    redis_ping,
    retry,
    wait_ports_free,
)

pytestmark = pytest.mark.engine

RUNS = {"mysql", "redis", "duckdb"}  # the image's backing services, MinIO being absent
REFUSED = "http://127.0.0.1:1/minio"


@dataclass
class DevRun:
    loon: Loon
    output: str
    env_file: Path

    @property
    def env(self) -> dict[str, str | None]:
        return dotenv_values(self.env_file, interpolate=False)


@pytest.fixture(scope="module")
def dev_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevRun]:
    loon = deploy(tmp_path_factory.mktemp("dev"), "production", https=False)
    d = loon.deployment
    # The case: the config expects MinIO (a source URL), the build leaves it out (the
    # URL refuses: loopback, nothing listens on port 1), so the env file is aligned after it.
    loon.config["deploymentSettings"]["minioSourceUrl"] = REFUSED
    d.config.write_text(json.dumps(loon.config, indent=2))
    wait_ports_free()
    try:
        result = subprocess.run([sys.executable, "-m", "loon_supervisor", "dev", "-d",
                                 "--config-file", str(d.config)], cwd=d.root, env=d.env(),
                                capture_output=True, text=True, timeout=1800)
        output = result.stdout + result.stderr
        assert result.returncode == 0, output
        assert "Traceback" not in output
        yield DevRun(loon, output, d.project / ".build-files" / "dev.env")
    finally:
        loon.cleanup()


def test_dev_runs_the_backing_services_for_a_host_server(dev_run: DevRun) -> None:
    loon, env = dev_run.loon, dev_run.env
    d = loon.deployment
    assert stat.S_IMODE(dev_run.env_file.stat().st_mode) == 0o600
    assert env["DATABASE_HOST"] == "127.0.0.1" and env["DATABASE_PORT"] == "3306"
    assert env["DATABASE_PASSWORD"] == loon.mysql["databasePassword"]
    assert loon.mysql["databasePassword"] not in dev_run.output

    def login() -> str:
        try:
            conn = pymysql.connect(host="127.0.0.1", port=3306, user=env["DATABASE_USER"],
                                   password=env["DATABASE_PASSWORD"],
                                   database=env["DATABASE_NAME"], connect_timeout=5)
        except pymysql.err.MySQLError as exc:  # not up yet: retry
            raise AssertionError(str(exc)) from None
        with conn, conn.cursor() as cur:
            cur.execute("SELECT DATABASE()")
            return str(cur.fetchone()[0])
    assert retry(login, timeout=180) == env["DATABASE_NAME"]
    assert retry(lambda: redis_ping(6379), timeout=60).startswith(b"+PONG")
    followed = {p.stem for p in d.session().glob("*.log")} - {"out", "container"}
    assert followed == RUNS, followed
    _, programs = exec_in(d.name, "supervisorctl", "-c", "/etc/supervisor/loon.conf", "status")
    running = {line.split()[0] for line in programs.splitlines() if line.strip()}
    assert running == RUNS, programs
    out = (d.session() / "out.log").read_text()
    assert "not in image" in out and "minio" in out  # MinIO is not fetchable here


def test_dev_says_what_runs(dev_run: DevRun) -> None:
    """Issue 29, item 10, on a real dev run of an image without MinIO."""
    loon, env, output = dev_run.loon, dev_run.env, dev_run.output
    d = loon.deployment
    lines = output.splitlines()

    # dev.env agrees with the image: no MinIO, no endpoint that would refuse the host
    # server's connection; DEBUG=true, and the run says so.
    assert env["MINIO_ENABLED"] == "false", env.keys()
    assert not [k for k in env if k.startswith("MINIO_STORAGE")], env.keys()
    assert env["DEBUG"] == "true"

    # ... and with the container's own environment (what `status` reads).
    inspect = subprocess.run(["docker", "inspect", "--format", "{{json .Config.Env}}", d.name],
                             capture_output=True, text=True, check=True)
    container_env = dict(e.split("=", 1) for e in json.loads(inspect.stdout) if "=" in e)
    assert container_env["MINIO_ENABLED"] == "false"

    # Written once, after the build decided MinIO is absent, naming what it points at and
    # how Moon's server reads it (DJANGO_ENV_FILE, not an ln -s Loon does not look at).
    wrote = [i for i, line in enumerate(lines) if "dev.env" in line and "wrote" in line]
    assert len(wrote) == 1, output
    said = lines[wrote[0]]
    fetched = [i for i, line in enumerate(lines)
               if f"could not be fetched from {REFUSED}" in line]
    absent = [i for i, line in enumerate(lines) if "MinIO is NOT in this image" in line]
    assert fetched and absent and fetched[0] < absent[0] < wrote[0], output
    assert "sets DEBUG=true" in said
    assert "MariaDB 127.0.0.1:3306, Redis 127.0.0.1:6379" in said and "MinIO" not in said
    assert f"DJANGO_ENV_FILE={dev_run.env_file} moon server:run" in said
    assert "ln -s" not in output

    # The closing line names the services that run, not a URL nothing serves.
    closing = [line for line in lines if line.startswith("up: ")]
    assert len(closing) == 1, output
    assert set(closing[0].removeprefix("up: ").split(" (")[0].split(", ")) == RUNS
    assert "nothing serves HTTP" in closing[0]
    assert "Loon is up" not in output and "http://localhost" not in output
    assert not port_open(HTTP_PORT) and not port_open(HTTPS_PORT)

    # status: no URL, nginx (and the Loon server programs) marked as not run, not "unknown";
    # still exit 1, as the README documents for left-out services.
    def status() -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
        st = subprocess.run([sys.executable, "-m", "loon_supervisor", "status",
                             "--config-file", str(d.config)], cwd=d.root,
                            env=d.env(COLUMNS="400"), capture_output=True, text=True,
                            timeout=60)
        states = {}
        for line in st.stdout.splitlines():
            cells = [c.strip() for c in re.split(r"[│┃|]", line) if c.strip()]
            if len(cells) >= 2:
                states[cells[0]] = cells[1]
        assert all(states.get(svc) == "RUNNING" for svc in RUNS), st.stdout
        return st, states

    st, states = retry(status, timeout=120)
    assert st.returncode == 1, st.stdout + st.stderr
    assert not [line for line in st.stdout.splitlines() if line.split()[:1] == ["url"]], \
        st.stdout
    assert states.get("nginx") == "not run (left out by --only or loon dev)", st.stdout
    assert all(state == "not run (left out by --only or loon dev)"
               for svc, state in states.items() if svc not in RUNS | {"service"}), st.stdout
    assert "MINIO_ENABLED=false" in st.stdout  # the same answer as dev.env


def test_dev_needs_host_networking(tmp_path: Path) -> None:
    """The README's rule, on a real engine: without networkMode "host", `loon dev` ends with
    one sentence and exit 2 before any build or container (no port is bound)."""
    loon = deploy(tmp_path, "production", https=False)
    d = loon.deployment
    try:
        loon.config["deploymentSettings"]["networkMode"] = "none"
        d.config.write_text(json.dumps(loon.config, indent=2))
        result = subprocess.run([sys.executable, "-m", "loon_supervisor", "dev", "-d",
                                 "--config-file", str(d.config)], cwd=d.root, env=d.env(),
                                capture_output=True, text=True, timeout=120)
        output = result.stdout + result.stderr
        assert result.returncode == 2, output
        assert "Traceback" not in output
        assert "deploymentSettings.networkMode" in output and '"networkMode": "host"' in output
        assert "building" not in output.lower() and "started container" not in output
        listed = subprocess.run(["docker", "ps", "-aq", "--filter", f"name=^/{d.name}$"],
                                capture_output=True, text=True, check=True)
        assert listed.stdout.strip() == ""
        assert not (d.project / ".build-files" / "dev.env").exists()
    finally:
        d.cleanup()
