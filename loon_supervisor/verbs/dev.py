"""``loon dev``: only Loon's backing services, for a server run on the host with Moon.

Loon's developer workflow runs the client and the Django server on the host
(``moon server:run``), which fails without MariaDB, Redis and MinIO. The image already holds
them: ``loon dev`` runs just those (and DuckDB) with run-time service selection, on host
networking so they listen on 127.0.0.1, follows their logs as ``up`` does, and writes the
environment the host-run server needs as ``.build-files/dev.env`` (mode 0600: it holds the
passwords), ready to be the server's ``.env``. Ctrl+C and ``-D``/``loon down`` as usual.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from loon_supervisor.errors import ConfigError, Problem
from loon_supervisor.paths import build_files_dir
from loon_supervisor.sinks.reporter import Reporter
from loon_supervisor.spec.envfile import write_env_file
from loon_supervisor.spec.prepare import Prepared

BACKING = ("mysql", "redis", "minio", "duckdb")
DEV_ENV = "dev.env"

# What a host-run server reads, taken from the container's env file; host-side values win.
KEEP = ("DATABASE_NAME", "DATABASE_USER", "DATABASE_PASSWORD", "DATABASE_HOST",
        "DATABASE_PORT", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "MINIO_ENABLED",
        "MINIO_STORAGE_ACCESS_KEY", "MINIO_STORAGE_SECRET_KEY", "MINIO_STORAGE_ENDPOINT",
        "MINIO_STORAGE_MEDIA_BUCKET_NAME", "MINIO_STORAGE_STATIC_BUCKET_NAME", "SECRET_KEY",
        "USE_HTTP")
HOST_SIDE = {"DATABASE_HOST": "127.0.0.1", "DATABASE_PORT": "3306",
             "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
             "CELERY_RESULT_BACKEND": "redis://127.0.0.1:6379/0",
             "ALLOWED_HOST": "localhost", "DEBUG": "true"}
MINIO_HOST_SIDE = {"MINIO_STORAGE_ENDPOINT": "127.0.0.1:9000",
                   "MINIO_STORAGE_MEDIA_URL": "127.0.0.1:9000/data",
                   "MINIO_STORAGE_STATIC_URL": "127.0.0.1:9000/static",
                   "USE_HTTP": "true"}
"""Only with MINIO_ENABLED=true: Loon's settings then require the two URLs; without MinIO
in the image an endpoint would only lead the server to a refused connection. Loon's
settings prepend the scheme to both URLs (``SITE_PREFIX``, from USE_HTTP, which sets
nothing else): the URLs carry none, and USE_HTTP says http, the scheme MinIO speaks on
127.0.0.1:9000 (the host-run server itself serves plain HTTP)."""
MINIO_KEYS = ("MINIO_STORAGE_ACCESS_KEY", "MINIO_STORAGE_SECRET_KEY",
              "MINIO_STORAGE_MEDIA_BUCKET_NAME", "MINIO_STORAGE_STATIC_BUCKET_NAME")
ENV_FILE_VAR = "DJANGO_ENV_FILE"
"""Where Loon's settings read their env file from (default ~/loonar/apps/server/.env)."""


def host_environment(container_env: dict[str, str]) -> dict[str, str]:
    """The variables a server on the host needs to reach the backing services; agrees
    with the container's env file (written again once the build knows about MinIO)."""
    env = {k: container_env[k] for k in KEEP if k in container_env}
    env.update(HOST_SIDE)
    if container_env.get("LOON_S3_EXTERNAL") == "true":
        # The lab's store, reached from the host as from the container. Loon's own settings
        # prefix its URLs with SITE_PREFIX (from USE_HTTP): here the store's scheme. They
        # speak plain HTTP to the store (MINIO_STORAGE_USE_HTTPS = False): an https store
        # needs the deployment settings.
        where = f"{env.get('MINIO_STORAGE_ENDPOINT', '')}/" \
                f"{env.get('MINIO_STORAGE_MEDIA_BUCKET_NAME', 'data')}"
        endpoint_url = container_env.get("LOON_S3_ENDPOINT_URL", "")
        env.update(MINIO_STORAGE_MEDIA_URL=where, MINIO_STORAGE_STATIC_URL=where,
                   LOON_S3_ENDPOINT_URL=endpoint_url,
                   USE_HTTP="false" if endpoint_url.startswith("https://") else "true")
    elif env.get("MINIO_ENABLED") == "true":
        env.update(MINIO_HOST_SIDE)
    else:
        env["MINIO_ENABLED"] = "false"
        for key in (*MINIO_KEYS, *MINIO_HOST_SIDE):
            env.pop(key, None)
    return env


def addresses(env: dict[str, str]) -> str:
    """The backing services a dev run offers, with their addresses."""
    found = ["MariaDB 127.0.0.1:3306", "Redis 127.0.0.1:6379"]
    if env.get("LOON_S3_ENDPOINT_URL"):
        found.append(f"the external S3 store {env['LOON_S3_ENDPOINT_URL']}")
    elif env.get("MINIO_ENABLED") == "true":
        found.append("MinIO 127.0.0.1:9000")
    return ", ".join(found)


def check_network(prepared: Prepared, _say: Reporter | None = None) -> None:
    """The services listen on the container's 127.0.0.1: only host networking shares it."""
    if prepared.config.deploymentSettings.networkMode != "host":
        raise ConfigError([Problem(
            "deploymentSettings.networkMode",
            f"is '{prepared.config.deploymentSettings.networkMode}', but `loon dev` needs "
            "host networking (the backing services listen on 127.0.0.1)",
            'set "networkMode": "host" (as config.example.json does)')])


def write_dev_env(prepared: Prepared, say: Reporter) -> Path:
    """Write ``.build-files/dev.env`` and say how to use it (never its values)."""
    check_network(prepared)
    env = host_environment(prepared.env)
    path = write_env_file(build_files_dir() / DEV_ENV, env)
    say(f"wrote {path} (mode 0600, holds passwords; sets DEBUG=true) for a Loon server run on "
        f"this machine against {addresses(env)}: start it with "
        f"`{ENV_FILE_VAR}={path} moon server:run` ({ENV_FILE_VAR} names the file Loon's "
        "settings read; its default is ~/loonar/apps/server/.env)")
    return path


@dataclass(frozen=True)
class DevOptions:
    """``loon dev``: the config, env file and how the backing services run."""

    config_file: Path
    env_file: str = ".env"
    verbose: bool = False
    detached: bool = False


async def run(opts: DevOptions) -> int:
    """Only the backing services, and .build-files/dev.env for a host-run server."""
    from loon_supervisor.verbs.up import UpRun, up

    # The network is checked before anything starts; dev.env is written once the build has
    # decided what the image holds (MinIO or not), so it never names a service that is absent.
    return await up(UpRun(opts.config_file, opts.env_file, opts.verbose, opts.detached,
                          only=BACKING, on_prepared=check_network, on_built=write_dev_env))
