"""`loon dev` with the real Loon image: only the backing services, reachable from the host
on 127.0.0.1, and an env file a host-run Loon server can use as its .env."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pymysql
from dotenv import dotenv_values

from tests.loon_images.support import deploy, exec_in, redis_ping, retry, wait_ports_free


def test_dev_runs_the_backing_services_for_a_host_server(tmp_path: Path) -> None:
    loon = deploy(tmp_path, "production", https=False)
    d = loon.deployment
    wait_ports_free()
    try:
        result = subprocess.run([sys.executable, "-m", "loon_supervisor", "dev", "-d",
                                 "--config-file", str(d.config)], cwd=d.root, env=d.env(),
                                capture_output=True, text=True, timeout=1800)
        assert result.returncode == 0, result.stdout + result.stderr
        env_file = d.project / ".build-files" / "dev.env"
        assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
        env = dotenv_values(env_file, interpolate=False)
        assert env["DATABASE_HOST"] == "127.0.0.1" and env["DATABASE_PORT"] == "3306"
        assert env["DATABASE_PASSWORD"] == loon.mysql["databasePassword"]
        assert loon.mysql["databasePassword"] not in result.stdout + result.stderr

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
        assert followed == {"mysql", "redis", "duckdb"}, followed
        _, programs = exec_in(d.name, "supervisorctl", "-c", "/etc/supervisor/loon.conf",
                              "status")
        running = {line.split()[0] for line in programs.splitlines() if line.strip()}
        assert running == {"mysql", "redis", "duckdb"}, programs
        out = (d.session() / "out.log").read_text()
        assert "not in image" in out and "minio" in out  # MinIO is not fetchable here
    finally:
        loon.cleanup()
