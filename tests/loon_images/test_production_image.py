"""The production image (docker/) built and run through the supervisor, with HTTPS from a
test certificate and without MinIO (its binary cannot be fetched on CI machines)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.loon_images import checks
from tests.loon_images.support import (
    HTTP_PORT,
    HTTPS_PORT,
    Loon,
    deploy,
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
    status, _, body = retry(lambda: checks.ok(http(f"https://127.0.0.1:{HTTPS_PORT}/")))
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
    checks.check_duckdb(f"https://127.0.0.1:{HTTPS_PORT}/ws", f"wss://127.0.0.1:{HTTPS_PORT}/ws")


def test_each_service_log_matches_the_container(loon: Loon) -> None:
    checks.check_logs(loon, SERVICES)


def test_mysql_row_survives_down_and_up(loon: Loon) -> None:
    checks.check_row_survives_down_up(loon, SERVICES)

