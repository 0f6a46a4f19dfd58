"""An external S3-compatible store as Loon's storage (minioSettings.endpointUrl): the
production image built from the stand-in Loon (django-s3-file-field on django-minio-storage,
as Loon) against moto's S3 server on loopback standing in for the lab's store. A presigned
upload goes through the server's /api/s3-upload/ to the store, the client's /data/ reads
come from the bucket, and `loon doctor` passes; with the store stopped, doctor fails with
one sentence naming the store."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

from loon_supervisor.spec.envfile import read_env_file
from tests.loon_images.support import (
    HTTP_PORT,
    Loon,
    deploy,
    ensure_base_image,
    http,
    retry,
)
from tests.s3_store import ACCESS_KEY, REGION, SECRET_KEY, S3Store, free_port

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("engine")]

BUCKET = "loon-lab-data"
API = f"http://localhost:{HTTP_PORT}/api"
UPLOADS = ("uploads", "presigned round trip")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Store]:
    s3 = S3Store(free_port())
    s3.start(tmp_path_factory.mktemp("moto") / "moto.log")
    try:
        s3.make_bucket(BUCKET)  # the lab's bucket exists before Loon
        yield s3
    finally:
        s3.stop()


@pytest.fixture(scope="module")
def loon(engine: None, store: S3Store,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loon]:
    ensure_base_image()
    d = deploy(tmp_path_factory.mktemp("s3"), "production", https=False)
    d.config["minioSettings"] = {"minioStorageAccessKey": ACCESS_KEY,
                                 "minioStorageSecretKey": SECRET_KEY,
                                 "endpointUrl": store.url, "region": REGION,
                                 "mediaBucket": BUCKET}
    d.config["deploymentSettings"]["imageTag"] = "loon-ci:s3"
    d.deployment.config.write_text(json.dumps(d.config, indent=2))
    try:
        d.up()
        print(f"\nexternal-store image: build.py -d took {d.build_seconds:.0f} s")
        yield d
    finally:
        d.cleanup()


def _doctor(loon: Loon) -> tuple[int, dict[tuple[str, str], dict]]:  # type: ignore[type-arg]
    r = loon.deployment.loon("doctor", "--config-file", str(loon.deployment.config), "--json",
                             timeout=180)
    data = json.loads(r.stdout)
    return r.returncode, {(c["service"], c["check"]): c for c in data["checks"]}


def _post(path: str, payload: dict) -> dict:  # type: ignore[type-arg]
    status, _, body = http(f"{API}/s3-upload/{path}/", json.dumps(payload).encode(),
                           {"Content-Type": "application/json"}, "POST")
    assert status == 200, (path, status, body[:500])
    return json.loads(body)  # type: ignore[no-any-return]


def test_env_and_terminal_say_uploads_go_to_the_store(loon: Loon, store: S3Store) -> None:
    env = read_env_file(loon.deployment.project / ".build-files" / ".env")
    assert env["MINIO_ENABLED"] == "true" and env["LOON_S3_EXTERNAL"] == "true"
    assert env["MINIO_STORAGE_ENDPOINT"] == f"127.0.0.1:{store.port}"
    assert env["MINIO_STORAGE_MEDIA_BUCKET_NAME"] == BUCKET
    assert env["MINIO_STORAGE_REGION"] == REGION and env["MINIO_STORAGE_USE_HTTPS"] == "false"
    said = f"uploads go to the external S3-compatible store {store.url}, bucket {BUCKET}"
    out_log = (loon.session() / "out.log").read_text(errors="replace")
    assert said in out_log and said in loon.up_output
    for text in (out_log, loon.up_output):
        assert "uploads are UNAVAILABLE" not in text and "MinIO is NOT in this image" not in text
        assert SECRET_KEY not in text
    status = loon.status()
    assert status.returncode == 0, status.stdout
    assert "unavailable" not in status.stdout and store.url in status.stdout, status.stdout
    server_log = (loon.session() / "server.log").read_text(errors="replace")
    assert "W001" not in server_log and SECRET_KEY not in server_log


def test_presigned_upload_round_trip_through_the_server(loon: Loon, store: S3Store) -> None:
    """What Loon's client does: initialize, PUT to the presigned URL (the store itself),
    complete, finalize; the object is then in the lab's bucket."""
    data = f"an upload {uuid.uuid4()}\n".encode()
    init = retry(lambda: _post("upload-initialize", {
        "field_id": "api.LoonUpload.blob", "file_name": "cells.csv",
        "file_size": len(data), "content_type": "text/csv"}), timeout=120, interval=2)
    url = init["parts"][0]["upload_url"]
    assert url.startswith(f"{store.url}/{BUCKET}/temp/"), url
    status, headers, _ = http(url, data, {"Content-Type": "application/octet-stream"}, "PUT")
    assert status == 200, status
    etag = {k.lower(): v for k, v in headers.items()}["etag"]
    comp = _post("upload-complete", {"upload_signature": init["upload_signature"],
                                     "upload_id": init["upload_id"],
                                     "parts": [{"part_number": 1, "size": len(data),
                                                "etag": etag}]})
    status, _, body = http(comp["complete_url"], comp["body"].encode(),
                           {"Content-Type": "application/xml"}, "POST")
    assert status == 200 and b"<Error>" not in body, body[:500]
    assert _post("finalize", {"upload_signature": init["upload_signature"]})["field_value"]
    got = store.client().get_object(Bucket=BUCKET, Key=init["object_key"])["Body"].read()
    assert got == data


def test_first_run_index_in_the_bucket_and_read_through_nginx(loon: Loon,
                                                             store: S3Store) -> None:
    """The first-run step wrote aa_index.json into the store's bucket; the name check reads
    it there, and the client's /data/ reads come from the bucket through nginx."""
    index = store.client().get_object(Bucket=BUCKET, Key="aa_index.json")["Body"].read()
    assert json.loads(index) == {"experiments": []}
    status, _, body = http(f"{API}/verifyExperimentName/new-experiment",
                           headers={"Host": "localhost"})
    assert status == 200 and json.loads(body) == {"status": "SUCCESS"}, body[:500]
    status, _, body = http(f"http://localhost:{HTTP_PORT}/data/aa_index.json")
    assert status == 200 and json.loads(body) == {"experiments": []}, (status, body[:300])
    status, _, _ = http(f"http://localhost:{HTTP_PORT}/data/x", b"no", method="PUT")
    assert status == 403  # /data/ only reads
    status, _, _ = http(f"http://localhost:{HTTP_PORT}/static/admin/css/base.css")
    assert status == 200  # static files stay in the image


def test_doctor_passes_with_the_round_trip(loon: Loon, store: S3Store) -> None:
    def passing() -> tuple[int, dict[tuple[str, str], dict]]:  # type: ignore[type-arg]
        code, found = _doctor(loon)
        assert found[UPLOADS]["result"] == "pass", found[UPLOADS]
        assert code == 0, {k: v for k, v in found.items() if v["result"] == "fail"}
        return code, found

    _, found = retry(passing, timeout=120, interval=5)
    detail = found[UPLOADS]["detail"]
    assert store.url in detail and "read back at /data/" in detail and "deleted" in detail
    assert found[("minio", "health and buckets")]["result"] == "skip"
    keys = [o["Key"] for o in store.client().list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    assert not [k for k in keys if k.endswith("loon-doctor-probe.txt")], keys


def test_doctor_fails_with_one_sentence_when_the_store_is_down(loon: Loon,
                                                               store: S3Store) -> None:
    store.stop()  # the last test of the module: the store stays down
    code, found = _doctor(loon)
    assert code == 1
    row = found[UPLOADS]
    assert row["result"] == "fail", row
    assert row["detail"].startswith(
        f"a presigned upload through Loon's server to the external store {store.url} "
        f"(bucket {BUCKET}) failed at upload-initialize: "), row["detail"]
    assert "minioSettings.endpointUrl" in row["hint"]
    assert SECRET_KEY not in json.dumps(list(found.values()))
    print(f"\ndoctor with the store stopped: {row['detail']}")
