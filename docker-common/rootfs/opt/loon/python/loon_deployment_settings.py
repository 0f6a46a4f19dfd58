"""Django settings of a deployed Loon: Loon's own settings module, unchanged, plus what a
deployment needs that Loon's settings do not say (its code is never edited).

The service wrappers set DJANGO_SETTINGS_MODULE=loon_deployment_settings (Loon's wsgi.py and
celery_app.py only ``setdefault`` it) and LOON_DJANGO_PROJECT (the project holding
settings.py, found at build time). What it adds:

* LOGGING: Django's request and security loggers go to stderr, which supervisord writes to
  server.log, with their tracebacks and the request's method and path (Celery's worker
  already logs a failed task with its traceback to celery.log and is left as it is). Without it, DEBUG=false sends request errors to mail_admins
  only and the traceback is lost. The query string is left out (it can carry tokens);
  tracebacks never show local variables, so no secret reaches the logs this way.
* MEDIA_ROOT and STATIC_ROOT without MinIO: uploads in LOON_MEDIA_DIR (a host volume) and
  static files collected to LOON_STATIC_DIR, which nginx serves at /static/.
* An external S3-compatible store (LOON_S3_EXTERNAL=true, minioSettings.endpointUrl): Loon's
  settings hard-code ``MINIO_STORAGE_USE_HTTPS = False`` and know no region, CA bundle or
  certificate switch; here the media storage becomes loon_s3_storage.ExternalMediaStorage
  (Loon's MinioMediaStorage with the deployment's TLS), https and the region come from the
  env file, presigned URLs name the store itself (not nginx's /data/), the bucket is never
  created (nor made public) from here, and static files stay in the image (nginx /static/).
"""

from __future__ import annotations

import importlib
import logging
import os

_loon = importlib.import_module(f"{os.environ.get('LOON_DJANGO_PROJECT', 'server')}.settings")
globals().update({name: value for name, value in vars(_loon).items() if name.isupper()})


class RequestFormatter(logging.Formatter):
    """Adds the request line (method and path, no query string) to Django's request and
    security records, which carry the request as ``record.request``."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        request = getattr(record, "request", None)
        method = getattr(request, "method", None)
        path = getattr(request, "path", None)
        if method and path:
            status = getattr(record, "status_code", None)
            head, sep, rest = text.partition("\n")
            line = f"{method} {path}" + (f" -> HTTP {status}" if status else "")
            text = f"{head} [{line}]{sep}{rest}"
        return text


def _loggers(*names: str) -> dict[str, dict[str, object]]:
    return {name: {"handlers": ["loon_console"], "level": "ERROR", "propagate": False}
            for name in names}


LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "loon": {
            "()": RequestFormatter,
            "format": "%(asctime)s %(levelname)s %(name)s: %(message)s",
        },
    },
    "handlers": {
        "loon_console": {"class": "logging.StreamHandler", "formatter": "loon"},
    },
    "loggers": _loggers("django.request", "django.security"),
}

if not globals().get("MINIO_ENABLED", False):
    if not globals().get("MEDIA_ROOT"):
        MEDIA_ROOT = os.environ.get("LOON_MEDIA_DIR", "/var/lib/loon/media")
    if not globals().get("STATIC_ROOT"):
        STATIC_ROOT = os.environ.get("LOON_STATIC_DIR", "/var/lib/loon/static")


def _external_store() -> None:
    """Point Loon's MinIO storage at the external store the env file names."""
    g = globals()
    g["MINIO_STORAGE_USE_HTTPS"] = os.environ.get("MINIO_STORAGE_USE_HTTPS", "") == "true"
    g["MINIO_STORAGE_REGION"] = os.environ.get("MINIO_STORAGE_REGION") or None
    g["MINIO_STORAGE_MEDIA_URL"] = None  # presign with the store's own address
    g["MINIO_STORAGE_AUTO_CREATE_MEDIA_BUCKET"] = False
    media = "loon_s3_storage.ExternalMediaStorage"
    static = "django.contrib.staticfiles.storage.StaticFilesStorage"
    if "STORAGES" in g:  # a Loon on Django's newer STORAGES setting
        g["STORAGES"] = {**g["STORAGES"], "default": {"BACKEND": media},
                         "staticfiles": {"BACKEND": static}}
    else:
        g["DEFAULT_FILE_STORAGE"] = media
        g["STATICFILES_STORAGE"] = static
    if not g.get("STATIC_ROOT"):
        g["STATIC_ROOT"] = os.environ.get("LOON_STATIC_DIR", "/var/lib/loon/static")


if globals().get("MINIO_ENABLED", False) and os.environ.get("LOON_S3_EXTERNAL") == "true":
    _external_store()
