"""The production image (docker/) built and run through the supervisor, with HTTPS from a
test certificate and without MinIO (its binary cannot be fetched on CI machines)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.loon_images import checks
from tests.loon_images.support import (
    HTTP_PORT,
    HTTPS_PORT,
    Loon,
    assert_logs_match,
    deploy,
    duckdb_query,
    duckdb_ws_query,
    ensure_base_image,
    http,
    retry,
)

pytestmark = pytest.mark.usefixtures("engine")

SERVICES = ["mysql", "redis", "nginx", "duckdb"]
TAG = "loon-ci:prod"


@pytest.fixture(scope="module")
def loon(engine: None, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    ensure_base_image()
    d = deploy(tmp_path_factory.mktemp("prod"), "production", https=True)
    try:
        d.up()
        print(f"\nproduction image: build.py -d took {d.build_seconds:.0f} s")
        yield d
    finally:
        d.cleanup()


def test_image_has_no_minio_and_says_so(loon: Loon) -> None:
    checks.check_labels(loon, TAG, "production", SERVICES)
    out_log = (loon.session() / "out.log").read_text(errors="replace")
    assert "building without MinIO" in out_log, out_log[:3000]


def test_mysql_login_with_configured_credentials(loon: Loon) -> None:
    checks.check_mysql_login(loon)


def test_redis_answers_ping(loon: Loon) -> None:
    checks.check_redis()


def test_nginx_serves_https_with_the_test_certificate(loon: Loon) -> None:
    status, _, body = retry(lambda: _ok(http(f"https://127.0.0.1:{HTTPS_PORT}/")))
    assert b"Loon" in body
    for svc in SERVICES:  # the status page of an image built without the client
        assert f"<li>{svc}</li>".encode() in body
    # plain HTTP redirects to the HTTPS port
    status, headers, _ = http(f"http://localhost:{HTTP_PORT}/some/path?q=1")
    assert status == 301
    assert headers["Location"] == f"https://localhost:{HTTPS_PORT}/some/path?q=1"
    # the certificate served is the one from nginxSettings
    import ssl
    served = ssl.get_server_certificate(("127.0.0.1", HTTPS_PORT))
    configured = Path(loon.config["nginxSettings"]["sourceVolumeLocation"], "loon.crt")
    assert ssl.PEM_cert_to_DER_cert(served) == ssl.PEM_cert_to_DER_cert(configured.read_text())
    # without MinIO, /data answers with a reason instead of hanging or 502
    status, _, body = http(f"https://127.0.0.1:{HTTPS_PORT}/data/x")
    assert status == 503 and b"MinIO" in body


def test_duckdb_answers_a_query(loon: Loon) -> None:
    rows = retry(lambda: duckdb_query("http://127.0.0.1:3000/", "SELECT 42 AS x"))
    assert rows == [{"x": 42}]
    # through nginx: HTTP at /ws and the WebSocket the Mosaic client uses
    rows = duckdb_query(f"https://127.0.0.1:{HTTPS_PORT}/ws", "SELECT 'via nginx' AS s")
    assert rows == [{"s": "via nginx"}]
    rows = duckdb_ws_query(f"wss://127.0.0.1:{HTTPS_PORT}/ws", "SELECT 7 * 6 AS y")
    assert rows == [{"y": 42}]


def test_each_service_log_matches_the_container(loon: Loon) -> None:
    time.sleep(0.5)
    assert_logs_match(loon, SERVICES)


def test_mysql_row_survives_down_and_up(loon: Loon) -> None:
    checks.check_row_survives_down_up(loon, SERVICES)


def _ok(answer: tuple[int, dict[str, str], bytes]) -> tuple[int, dict[str, str], bytes]:
    assert answer[0] == 200, answer
    return answer
