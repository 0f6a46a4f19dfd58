"""Loon's MinIO media storage pointed at an external S3-compatible store.

Loon's settings select django-minio-storage's ``MinioMediaStorage`` (MINIO_ENABLED=true), whose
client is built from settings with no way to give it a CA bundle or to switch certificate
checks off, and which trusts ``SSL_CERT_FILE`` (in this container: nginx's own certificate).
This subclass builds the same ``minio.Minio`` client with the deployment's TLS choices
(LOON_S3_TLS_VERIFY, LOON_S3_CA_BUNDLE) and otherwise reads the same settings, so
django-s3-file-field (which accepts any ``MinioStorage``) presigns Loon's uploads for it.
"""

from __future__ import annotations

import os
from datetime import timedelta

import certifi
import minio
import urllib3
from django.conf import settings
from django.utils.deconstruct import deconstructible
from minio_storage.storage import MinioMediaStorage, MinioStorage

SYSTEM_CA = "/etc/ssl/certs/ca-certificates.crt"  # holds deploymentSettings.extraCaCertificate


def http_client() -> urllib3.PoolManager:
    """minio's own pool settings, with the store's CA bundle (never SSL_CERT_FILE)."""
    verify = os.environ.get("LOON_S3_TLS_VERIFY", "true").lower() != "false"
    ca = os.environ.get("LOON_S3_CA_BUNDLE") or (
        SYSTEM_CA if os.path.isfile(SYSTEM_CA) else certifi.where())
    if not verify:
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    timeout = timedelta(minutes=5).seconds
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=timeout, read=timeout), maxsize=10,
        cert_reqs="CERT_REQUIRED" if verify else "CERT_NONE",
        ca_certs=ca if verify else None,
        retries=urllib3.Retry(total=5, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]))


@deconstructible
class ExternalMediaStorage(MinioMediaStorage):
    """``MinioMediaStorage`` for an external store: same settings, the deployment's TLS."""

    def __init__(self) -> None:  # replaces MinioMediaStorage's, which builds its own client
        client = minio.Minio(
            settings.MINIO_STORAGE_ENDPOINT,
            access_key=settings.MINIO_STORAGE_ACCESS_KEY,
            secret_key=settings.MINIO_STORAGE_SECRET_KEY,
            secure=bool(settings.MINIO_STORAGE_USE_HTTPS),
            region=getattr(settings, "MINIO_STORAGE_REGION", None) or None,
            http_client=http_client())
        MinioStorage.__init__(
            self, client, settings.MINIO_STORAGE_MEDIA_BUCKET_NAME,
            base_url=getattr(settings, "MINIO_STORAGE_MEDIA_URL", None),
            presign_urls=getattr(settings, "MINIO_STORAGE_MEDIA_USE_PRESIGNED", False),
            auto_create_bucket=False,  # the lab's bucket exists; never made public from here
            assume_bucket_exists=getattr(settings, "MINIO_STORAGE_ASSUME_MEDIA_BUCKET_EXISTS",
                                         False),
            object_metadata=getattr(settings, "MINIO_STORAGE_MEDIA_OBJECT_METADATA", None))
