"""An external store over https signed by a lab's own CA (minioSettings.caBundle): Loon's
server (whose own settings hard-code MINIO_STORAGE_USE_HTTPS = False and trust only
SSL_CERT_FILE, nginx's certificate here), doctor's PUT and nginx's /data/ proxy all verify the
store's certificate against that CA. moto's S3 server on loopback serves a certificate signed
by a CA made for the test."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.loon_images.support import (
    HTTPS_PORT,
    Loon,
    deploy,
    ensure_base_image,
    exec_in,
    http,
    retry,
)
from tests.s3_store import (
    ACCESS_KEY,
    REGION,
    SECRET_KEY,
    S3Store,
    free_port,
    make_ca_and_server_cert,
)

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("engine")]

BUCKET = "loon-tls-data"
UPLOADS = ("uploads", "presigned round trip")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Store]:
    base = tmp_path_factory.mktemp("moto-tls")
    s3 = S3Store(free_port(), tls=make_ca_and_server_cert(base / "pki"))
    s3.start(base / "moto.log")
    try:
        s3.make_bucket(BUCKET)
        yield s3
    finally:
        s3.stop()


@pytest.fixture(scope="module")
def loon(engine: None, store: S3Store,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loon]:
    ensure_base_image()
    assert store.tls is not None
    d = deploy(tmp_path_factory.mktemp("s3tls"), "production", https=True)
    d.config["minioSettings"] = {"minioStorageAccessKey": ACCESS_KEY,
                                 "minioStorageSecretKey": SECRET_KEY,
                                 "endpointUrl": store.url, "region": REGION,
                                 "mediaBucket": BUCKET, "caBundle": str(store.tls[0])}
    d.config["deploymentSettings"]["imageTag"] = "loon-ci:s3"
    d.deployment.config.write_text(json.dumps(d.config, indent=2))
    try:
        d.up()
        yield d
    finally:
        d.cleanup()


def test_https_store_with_the_lab_ca(loon: Loon, store: S3Store) -> None:
    def doctor() -> dict[tuple[str, str], dict]:  # type: ignore[type-arg]
        r = loon.deployment.loon("doctor", "--config-file", str(loon.deployment.config),
                                 "--json", timeout=180)
        found = {(c["service"], c["check"]): c for c in json.loads(r.stdout)["checks"]}
        assert found[UPLOADS]["result"] == "pass", found[UPLOADS]
        assert r.returncode == 0, [c for c in found.values() if c["result"] == "fail"]
        return found

    found = retry(doctor, timeout=120, interval=5)
    assert store.url in found[UPLOADS]["detail"]
    index = store.client().get_object(Bucket=BUCKET, Key="aa_index.json")["Body"].read()
    assert json.loads(index) == {"experiments": []}
    status, _, body = http(f"https://localhost:{HTTPS_PORT}/data/aa_index.json")
    assert status == 200 and json.loads(body) == {"experiments": []}, (status, body[:300])


def test_the_store_certificate_is_really_checked(loon: Loon, store: S3Store) -> None:
    """The same client without the lab CA refuses the store: verification is on, and the CA
    bundle is what lets it pass (not a check switched off somewhere)."""
    probe = ("import loon_s3_storage, sys\n"
             "try:\n"
             "    loon_s3_storage.http_client().request('GET', sys.argv[1] + '/', retries=False)\n"
             "except Exception as exc:\n"
             "    print(type(exc).__name__, exc)\n"
             "else:\n"
             "    print('accepted')\n")
    script = ('PYTHONPATH=/opt/loon/python LOON_S3_CA_BUNDLE="$2" '
              'exec /opt/loon/server/venv/bin/python -c "$1" "$3"')
    code, out = exec_in(loon.name, "bash", "-c", script, "probe", probe, "", store.url)
    assert code == 0 and "CERTIFICATE_VERIFY_FAILED" in out, out
    code, out = exec_in(loon.name, "bash", "-c", script, "probe", probe,
                        "/etc/loon/s3-ca.pem", store.url)
    assert code == 0 and out.strip() == "accepted", out
