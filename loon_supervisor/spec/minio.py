"""Keep the env file true to the image: MINIO_ENABLED follows the services really built in.

The env file is written before the build; the build may leave MinIO out (it could not be
fetched, or ``deploymentSettings.minioSourceUrl`` is null). Loon's settings switch their
storage on MINIO_ENABLED, so a stale ``true`` makes server and celery die on every start.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from loon_supervisor.paths import build_files_dir
from loon_supervisor.spec.envfile import environment, read_env_file, secret_key, write_env_file
from loon_supervisor.spec.prepare import Prepared

ABSENT_MESSAGE = (
    "WARNING: MinIO is NOT in this image: MINIO_ENABLED=false, so uploads are UNAVAILABLE "
    "(Loon's upload flow, django-s3-file-field's presigned uploads, needs an S3-compatible "
    "store); files Loon's server writes itself (its experiment index and files) go to "
    "Django's file-system storage in {dir} (minioSettings.sourceVolumeLocation, kept across "
    "down/up); supply MinIO as deploymentSettings.minioBinary (with minioSha256) where it "
    "cannot be downloaded, or set minioSettings.required to true to fail the build instead "
    "(docs/real-loon.md)"
)


EXTERNAL_MESSAGE = (
    "uploads go to the external S3-compatible store {url}, bucket {bucket} "
    "(minioSettings.endpointUrl; MinIO is not built into the image); `loon doctor` checks a "
    "presigned upload round trip through Loon's server"
)


def minio_expected(prepared: Prepared) -> bool:
    """MinIO belongs in a production deployment that configures it, unless minioSettings
    point at an external store."""
    cfg = prepared.config
    return cfg.minio is not None and not cfg.minio.external


def external_message(prepared: Prepared) -> str | None:
    """The line said after the build when uploads go to an external store, else None."""
    ext = prepared.config.external_store
    if ext is None:
        return None
    return EXTERNAL_MESSAGE.format(url=ext.endpointUrl, bucket=ext.media_bucket)


def align_env(prepared: Prepared, services: Collection[str],
              say: Callable[[str], None]) -> bool:
    """Rewrite the env file when MinIO is expected but not built in; True when it was absent.
    With an external store, say where uploads go instead."""
    if (said := external_message(prepared)) is not None:
        say(said)
        return False
    if not minio_expected(prepared) or "minio" in services:
        return False
    cfg = prepared.config
    key = secret_key(build_files_dir(), cfg.deploymentSettings.containerName)
    env = environment(cfg, key, minio_in_image=False)
    write_env_file(prepared.env_path, env)
    prepared.env = read_env_file(prepared.env_path)
    assert cfg.minioSettings is not None
    say(ABSENT_MESSAGE.format(dir=cfg.minioSettings.sourceVolumeLocation))
    return True
