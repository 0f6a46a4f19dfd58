"""The Local Loon image (docker-local/) built and run through the supervisor over plain HTTP,
serving a local data directory, with credentials other than the example's."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.loon_images import checks
from tests.loon_images.support import (
    HTTP_PORT,
    Loon,
    deploy,
    ensure_base_image,
    http,
    port_open,
    retry,
)

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("engine")]

SERVICES = ["mysql", "redis", "nginx", "duckdb", "data"]
TAG = "loon-ci:local"
MYSQL = {"databaseName": "loon_local_ci", "databaseUser": "ci_user",
         "databasePassword": "ci pass#1 $x", "databaseRootPassword": "ci-root pass"}
FILES = {
    "hello.txt": b"hello from the local volume\n",
    "experiment-1/frames.bin": bytes(range(256)) * 4096,  # 1 MiB, every byte value
}


def local_data(base: Path) -> None:
    root = base / "local-data"
    for rel, data in FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(0o644)
    for d in [root, *(p for p in root.rglob("*") if p.is_dir())]:
        d.chmod(0o755)  # nginx's workers (www-data) read it


@pytest.fixture(scope="module")
def loon(engine: None, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    ensure_base_image()
    d = deploy(tmp_path_factory.mktemp("local"), "local", https=False, mysql=MYSQL,
               prepare=local_data)
    try:
        d.up()
        print(f"\nlocal image: build.py -d took {d.build_seconds:.0f} s")
        yield d
    finally:
        d.cleanup()


def test_image_labels(loon: Loon) -> None:
    checks.check_labels(loon, TAG, "local", SERVICES)


def test_mysql_login_with_configured_credentials(loon: Loon) -> None:
    checks.check_mysql_login(loon)


def test_redis_answers_ping(loon: Loon) -> None:
    checks.check_redis()


def test_nginx_serves_http(loon: Loon) -> None:
    status, _, body = retry(lambda: checks.ok(http(f"http://127.0.0.1:{HTTP_PORT}/")))
    assert b"Loon" in body
    for svc in SERVICES:
        assert f"<li>{svc}</li>".encode() in body
    # useHttp: nothing listens for TLS
    assert not port_open(loon.config["deploymentSettings"]["httpsPort"])


def test_data_serves_files_from_the_local_volume(loon: Loon) -> None:
    for rel, data in FILES.items():
        status, _, body = retry(lambda rel=rel: checks.ok(http(f"http://127.0.0.1:{HTTP_PORT}/data/{rel}")))
        assert body == data, f"/data/{rel}: {len(body)} B differ from the file ({len(data)} B)"
    status, _, body = http(f"http://127.0.0.1:{HTTP_PORT}/data/")
    assert status == 200
    assert {e["name"] for e in json.loads(body)} == {"hello.txt", "experiment-1"}
    status, _, _ = http(f"http://127.0.0.1:{HTTP_PORT}/data/missing.txt")
    assert status == 404
    # read-only: neither the data service nor the mount accept writes
    status, _, _ = http(f"http://127.0.0.1:{HTTP_PORT}/data/new.txt", b"x", method="PUT")
    assert status in (403, 405)
    assert not os.path.exists(Path(loon.config["localDataSettings"]["sourceVolumeLocation"],
                                   "new.txt"))


def test_duckdb_answers_a_query(loon: Loon) -> None:
    checks.check_duckdb(f"http://127.0.0.1:{HTTP_PORT}/ws", f"ws://127.0.0.1:{HTTP_PORT}/ws")


def test_each_service_log_matches_the_container(loon: Loon) -> None:
    checks.check_logs(loon, SERVICES)


def test_mysql_row_survives_down_and_up(loon: Loon) -> None:
    checks.check_row_survives_down_up(loon, SERVICES)

