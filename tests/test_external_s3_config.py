"""minioSettings.endpointUrl (an external S3-compatible store): validation with the JSON path
and a fix, the env file it writes, and what the build and the container get (no MinIO, no
data directory, the CA bundle read-only)."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import anyio
import pytest

from loon_supervisor.config import load_config
from loon_supervisor.errors import ConfigError
from loon_supervisor.spec.envfile import S3_CA_TARGET, environment, read_env_file
from tests.certs import make_pair
from tests.conftest import base_config, write_config

SECRET = "lab-store-secret-value"


def ca_file(tmp_path: Path) -> Path:
    cert = tmp_path / "tls" / "lab-ca.pem"
    cert.parent.mkdir(parents=True, exist_ok=True)
    make_pair(cert, tmp_path / "tls" / "lab-ca.key")
    return cert


def external(tmp_path: Path, **minio: Any) -> dict[str, Any]:
    data = base_config(tmp_path)
    data["minioSettings"] = {"minioStorageAccessKey": "lab-access-key",
                             "minioStorageSecretKey": SECRET,
                             "endpointUrl": "https://s3.lab.example.org:9000", **minio}
    return data


def problems(tmp_path: Path, data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(write_config(tmp_path / "c.json", data), {})
    assert info.value.exit_code == 2
    found = [str(p) for p in info.value.problems]
    assert all(" — " in p for p in found), found  # each with its fix
    assert not any(SECRET in p for p in found)
    return found


def test_valid_external_store_needs_no_data_directory(tmp_path: Path) -> None:
    cfg = load_config(write_config(tmp_path / "c.json", external(
        tmp_path, region="eu-central-1", mediaBucket="loon-data")), {})
    assert cfg.external_store is not None and cfg.minio is not None
    assert cfg.minio.endpointUrl == "https://s3.lab.example.org:9000"
    assert cfg.minio.media_bucket == "loon-data"
    assert [p for p, _ in cfg.volume_dirs()] == ["mySqlSettings.sourceVolumeLocation"]
    assert SECRET not in repr(cfg)


@pytest.mark.parametrize("url,needle", [
    ("s3.lab.org", "must start with http:// or https://"),
    ("ftp://s3.lab.org", "must start with http:// or https://"),
    ("https://s3.lab.org/bucket", "must not contain a path"),
    ("https://user@s3.lab.org", "has a bad host"),
    ("https://s3.lab.org:99999", "has a bad host"),
    ("https://", "has a bad host"),
])
def test_bad_endpoint_urls(tmp_path: Path, url: str, needle: str) -> None:
    found = problems(tmp_path, external(tmp_path, endpointUrl=url))
    assert any(p.startswith("minioSettings.endpointUrl: ") and needle in p for p in found), found


@pytest.mark.parametrize("value", ["http://10.0.0.5:9000", "https://s3.lab.org/",
                                   "http://[::1]:4566"])
def test_good_endpoint_urls(tmp_path: Path, value: str) -> None:
    cfg = load_config(write_config(tmp_path / "c.json", external(tmp_path, endpointUrl=value)),
                      {})
    assert cfg.minio is not None and cfg.minio.endpointUrl == value.rstrip("/")


@pytest.mark.parametrize("field,value,needle", [
    ("mediaBucket", "Loon_Data", "is not an S3 bucket name"),
    ("mediaBucket", "ab", "is not an S3 bucket name"),
    ("region", "US East", "is not a region name"),
    ("tlsVerify", "no", "has the wrong JSON type"),
])
def test_bad_store_fields(tmp_path: Path, field: str, value: Any, needle: str) -> None:
    found = problems(tmp_path, external(tmp_path, **{field: value}))
    assert any(p.startswith(f"minioSettings.{field}: ") and needle in p for p in found), found


@pytest.mark.parametrize("minio,needle", [
    ({"endpointUrl": None, "region": "us-east-1"}, "region apply to an external store only"),
    ({"endpointUrl": "http://s3.lab.org", "tlsVerify": False},
     "apply to an https endpointUrl only"),
    ({"sourceVolumeLocation": "/srv/minio"}, "are for MinIO in the image"),
    ({"required": True}, "required is about MinIO in the image"),
])
def test_settings_that_do_not_fit_together(tmp_path: Path, minio: dict[str, Any],
                                           needle: str) -> None:
    found = problems(tmp_path, external(tmp_path, **minio))
    assert any(p.startswith("minioSettings: ") and needle in p for p in found), found


def test_bundled_minio_still_needs_its_directory(tmp_path: Path) -> None:
    data = base_config(tmp_path)
    del data["minioSettings"]["sourceVolumeLocation"]
    found = problems(tmp_path, data)
    assert any("sourceVolumeLocation is required" in p and "endpointUrl" in p for p in found)


def test_ca_bundle_must_be_a_pem_file_here(tmp_path: Path) -> None:
    found = problems(tmp_path, external(tmp_path, caBundle="missing-ca.pem"))
    assert any(p.startswith("minioSettings.caBundle: missing-ca.pem does not exist")
               for p in found), found
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    found = problems(tmp_path, external(tmp_path, caBundle=str(tmp_path / "junk.pem")))
    assert any("holds no PEM certificate" in p for p in found), found
    cert = ca_file(tmp_path)
    load_config(write_config(tmp_path / "c.json", external(tmp_path, caBundle=str(cert))), {})


def test_minio_binary_is_refused_with_an_external_store(tmp_path: Path) -> None:
    binary = tmp_path / "minio"
    binary.write_bytes(b"x")
    data = external(tmp_path)
    data["deploymentSettings"] = {"minioBinary": str(binary), "minioSha256": "0" * 64}
    found = problems(tmp_path, data)
    assert any(p.startswith("deploymentSettings.minioBinary: is set while") for p in found)


def test_env_file_for_an_external_store(tmp_path: Path, project: Path) -> None:
    cfg = load_config(write_config(tmp_path / "c.json", external(
        tmp_path, region="eu-central-1", mediaBucket="loon-data", caBundle=None)), {})
    for in_image in (True, False):  # MinIO is never in the image then: the env is the same
        env = environment(cfg, "k" * 40, minio_in_image=in_image)
        assert env["MINIO_ENABLED"] == "true"  # Loon's storage switch: MinIO storage = S3
        assert env["LOON_S3_EXTERNAL"] == "true"
        assert env["LOON_S3_ENDPOINT_URL"] == "https://s3.lab.example.org:9000"
        assert env["MINIO_STORAGE_ENDPOINT"] == "s3.lab.example.org:9000"
        assert env["MINIO_STORAGE_USE_HTTPS"] == "true"
        assert env["MINIO_STORAGE_REGION"] == "eu-central-1"
        assert env["MINIO_STORAGE_MEDIA_BUCKET_NAME"] == "loon-data"
        assert env["MINIO_STORAGE_ACCESS_KEY"] == "lab-access-key"
        assert env["MINIO_STORAGE_SECRET_KEY"] == SECRET
        assert env["LOON_S3_TLS_VERIFY"] == "true" and env["LOON_S3_CA_BUNDLE"] == ""
    cert = ca_file(tmp_path)
    cfg = load_config(write_config(tmp_path / "c.json", external(
        tmp_path, endpointUrl="http://127.0.0.1:4566")), {})
    env = environment(cfg, "k" * 40)
    assert env["MINIO_STORAGE_USE_HTTPS"] == "false" and env["MINIO_STORAGE_REGION"] == ""
    assert env["MINIO_STORAGE_MEDIA_BUCKET_NAME"] == "data"
    cfg = load_config(write_config(tmp_path / "c.json", external(tmp_path, caBundle=str(cert))),
                      {})
    assert environment(cfg, "k" * 40)["LOON_S3_CA_BUNDLE"] == S3_CA_TARGET
    cfg = load_config(write_config(tmp_path / "c.json", external(tmp_path, tlsVerify=False)), {})
    assert environment(cfg, "k" * 40)["LOON_S3_TLS_VERIFY"] == "false"


def test_bundled_minio_env_is_unchanged(tmp_path: Path, project: Path) -> None:
    cfg = load_config(write_config(tmp_path / "c.json", base_config(tmp_path)), {})
    env = environment(cfg, "k" * 40)
    assert env["LOON_S3_EXTERNAL"] == "false" and env["LOON_S3_ENDPOINT_URL"] == ""
    assert env["MINIO_STORAGE_ENDPOINT"] == "127.0.0.1:9000"
    assert env["MINIO_STORAGE_MEDIA_BUCKET_NAME"] == "data"
    assert environment(cfg, "k" * 40, minio_in_image=False)["MINIO_ENABLED"] == "false"


def test_validate_writes_the_secret_only_to_the_0600_env_file(tmp_path: Path,
                                                              project: Path) -> None:
    from loon_supervisor.spec.prepare import prepare

    cert = ca_file(tmp_path)
    config = write_config(tmp_path / "c.json", external(tmp_path, caBundle=str(cert),
                                                        mediaBucket="loon-data"))
    prepared = prepare(config, create_dirs=False)
    assert stat.S_IMODE(os.stat(prepared.env_path).st_mode) == 0o600
    assert read_env_file(prepared.env_path)["MINIO_STORAGE_SECRET_KEY"] == SECRET
    assert read_env_file(prepared.env_path)["MINIO_ENABLED"] == "true"
    assert not any(SECRET in m for m in prepared.messages)
    assert not any("MINIO_ENABLED=false" in m for m in prepared.messages)
    assert any(m.startswith("minioSettings.endpointUrl: uploads go to the external "
                            "S3-compatible store https://s3.lab.example.org:9000, bucket "
                            "loon-data") for m in prepared.messages), prepared.messages

    from loon_supervisor.engine.images import ImageContract
    from loon_supervisor.spec.loon import container_spec

    contract = ImageContract(image="loon:test", services=("mysql", "server"),
                             log_dir="/var/log/loon", status_command=None)
    for remote in (False, True):
        spec = container_spec(prepared, contract, remote)
        assert not any("/var/lib/minio" in b or "/var/lib/loon/media" in b for b in spec.binds)
        assert not spec.mounts
        if remote:
            assert spec.copies[S3_CA_TARGET] == cert
        else:
            assert f"{cert}:{S3_CA_TARGET}:ro" in spec.binds

    from loon_supervisor.spec.minio import align_env

    said: list[str] = []
    assert align_env(prepared, ("mysql", "server"), said.append) is False
    assert said == ["uploads go to the external S3-compatible store "
                    "https://s3.lab.example.org:9000, bucket loon-data (minioSettings."
                    "endpointUrl; MinIO is not built into the image); `loon doctor` checks a "
                    "presigned upload round trip through Loon's server"]
    assert read_env_file(prepared.env_path)["MINIO_ENABLED"] == "true"  # left as it was


def test_the_build_fetches_no_minio(tmp_path: Path) -> None:
    from loon_supervisor.spec.build_inputs import gather

    data = external(tmp_path)
    data["deploymentSettings"] = {"minioSourceUrl": "http://127.0.0.1:9/never-fetched"}
    cfg = load_config(write_config(tmp_path / "c.json", data), {})
    said: list[str] = []
    inputs = anyio.run(gather, cfg, tmp_path, tmp_path / "cache", ["mysql", "redis"],
                       said.append)
    assert "loon-build/minio" not in inputs.extra_files
    assert inputs.build_args["LOON_SERVICES"] == "mysql,redis"
    assert any("not built in (minioSettings.endpointUrl" in s for s in said), said
    assert not (tmp_path / "cache").exists()


def test_loon_dev_points_a_host_run_server_at_the_store() -> None:
    from loon_supervisor.verbs.dev import addresses, host_environment

    env = host_environment({"MINIO_ENABLED": "true", "LOON_S3_EXTERNAL": "true",
                            "LOON_S3_ENDPOINT_URL": "http://10.0.0.5:9000",
                            "MINIO_STORAGE_ENDPOINT": "10.0.0.5:9000",
                            "MINIO_STORAGE_ACCESS_KEY": "a", "MINIO_STORAGE_SECRET_KEY": "b",
                            "MINIO_STORAGE_MEDIA_BUCKET_NAME": "loon-data"})
    assert env["MINIO_ENABLED"] == "true" and env["MINIO_STORAGE_ENDPOINT"] == "10.0.0.5:9000"
    assert env["MINIO_STORAGE_MEDIA_URL"] == "10.0.0.5:9000/loon-data"
    assert "the external S3 store http://10.0.0.5:9000" in addresses(env)
    assert "MinIO 127.0.0.1:9000" not in addresses(env)
