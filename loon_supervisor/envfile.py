"""The env file: every variable Loon's services read, written so that both docker compose's
env-file parser and python-dotenv read each value back exactly.

Quoting (hand-written: no library writes env files for both readers; rules checked against
compose-go's dotenv/parser.go and python-dotenv's parser):

* no ``'`` and no ``\\``: single quotes, which both read literally;
* else, when there is no ``$`` (compose interpolates it inside double quotes) and the value
  neither starts nor ends with ``"`` nor ends with ``\\`` (compose trims quote characters at
  the edges and treats ``\\"`` as escaped): double quotes with ``\\`` and ``"`` escaped;
* else, when there is no ``#``, ``$`` or edge whitespace and no leading quote: unquoted;
* otherwise no form reads back alike in both (and newlines never do): the value is rejected.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from dotenv import dotenv_values

from loon_supervisor.config.model import LoonConfig
from loon_supervisor.errors import ConfigError, Problem

MYSQL_TARGET = "/var/lib/mysql"
MINIO_TARGET = "/var/lib/minio"
MEDIA_TARGET = "/var/lib/loon/media"  # uploads without MinIO (Django's file-system storage)
LOCAL_DATA_TARGET = "/app/data"


def quote(name: str, value: str) -> str:
    """One ``NAME=value`` line; raises ValueError when no form reads back alike."""
    if "\n" in value or "\r" in value or "\0" in value:
        raise ValueError("contains a line break or NUL, which an env file cannot hold")
    if "'" not in value and "\\" not in value:
        return f"{name}='{value}'"
    if "$" not in value and not value.startswith('"') and not value.endswith(('"', "\\")):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{name}="{escaped}"'
    if value and not any(c in value for c in "#$") and value == value.strip() \
            and value[0] not in "'\"":
        return f"{name}={value}"
    raise ValueError("mixes ' or \\ with $, # or edge quotes in a way docker compose and "
                     "python-dotenv would read differently")


def secret_key(build_dir: Path, deployment: str) -> str:
    """A random Django SECRET_KEY per deployment, kept across runs (never a constant)."""
    path = build_dir / f".secret-key.{deployment}"
    if path.exists():
        return path.read_text().strip()
    build_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return key


def environment(config: LoonConfig, key: str, minio_in_image: bool = True) -> dict[str, str]:
    """Every variable, in a fixed order; services inside the container use localhost.

    ``minio_in_image`` is False once the build left MinIO out: Loon's settings then must not
    use MinIO storage (MINIO_ENABLED=false), or every start of server and celery dies.
    """
    g = config.generalSettings
    m = config.mySqlSettings
    scheme = "http" if g.useHttp else "https"
    base = f"{scheme}://{g.baseUrl}"
    minio = config.minioSettings if g.environment == "production" and minio_in_image else None
    nginx = config.nginxSettings
    ssl_dir = nginx.targetVolumeLocation if nginx and not g.useHttp else ""
    local = config.localDataSettings if g.environment == "local" else None
    env = {
        "DATABASE_NAME": m.databaseName,
        "DATABASE_USER": m.databaseUser,
        "DATABASE_PASSWORD": m.databasePassword.get_secret_value(),
        "DATABASE_ROOT_PASSWORD": m.databaseRootPassword.get_secret_value(),
        "DATABASE_HOST": "127.0.0.1",
        "DATABASE_PORT": "3306",
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
        "CELERY_RESULT_BACKEND": "redis://127.0.0.1:6379/0",
        "MINIO_ENABLED": "true" if minio else "false",
        "MINIO_STORAGE_ACCESS_KEY": minio.minioStorageAccessKey.get_secret_value() if minio else "",
        "MINIO_STORAGE_SECRET_KEY": minio.minioStorageSecretKey.get_secret_value() if minio else "",
        "MINIO_STORAGE_ENDPOINT": "127.0.0.1:9000",
        "MINIO_STORAGE_MEDIA_BUCKET_NAME": "data",
        "MINIO_STORAGE_STATIC_BUCKET_NAME": "static",
        "MINIO_STORAGE_MEDIA_URL": f"{base}/data",
        "MINIO_STORAGE_STATIC_URL": f"{base}/static",
        "MINIO_BROWSER_REDIRECT_URL": f"{base}/minio/",
        "LOON_MEDIA_DIR": MEDIA_TARGET,
        "USE_HTTP": "true" if g.useHttp else "false",
        "VITE_ENVIRONMENT": g.environment,
        "VITE_SERVER_URL": g.baseUrl,
        "SSL_CERT_FILE": f"{ssl_dir}/{nginx.certFileLocation}" if ssl_dir and nginx else "",
        "SSL_KEY_FILE": f"{ssl_dir}/{nginx.keyFileLocation}" if ssl_dir and nginx else "",
        "SSL_TARGET_MOUNTED_DIRECTORY": ssl_dir,
        "LOCAL_DATA_VOLUME_LOCATION": local.sourceVolumeLocation if local else "",
        "ALLOWED_HOST": g.baseUrl.split("/")[0].split(":")[0],
        "NGINX_HTTP_PORT": str(config.deploymentSettings.httpPort),
        "NGINX_HTTPS_PORT": str(config.deploymentSettings.httpsPort),
        "SECRET_KEY": key,
        "DEBUG": "true" if config.deploymentSettings.djangoDebug else "false",
    }
    return env


CONFIG_SOURCE = {
    "DATABASE_NAME": "mySqlSettings.databaseName",
    "DATABASE_USER": "mySqlSettings.databaseUser",
    "DATABASE_PASSWORD": "mySqlSettings.databasePassword",
    "DATABASE_ROOT_PASSWORD": "mySqlSettings.databaseRootPassword",
    "MINIO_STORAGE_ACCESS_KEY": "minioSettings.minioStorageAccessKey",
    "MINIO_STORAGE_SECRET_KEY": "minioSettings.minioStorageSecretKey",
    "VITE_SERVER_URL": "generalSettings.baseUrl",
    "LOCAL_DATA_VOLUME_LOCATION": "localDataSettings.sourceVolumeLocation",
}

SECRET_NAMES = frozenset({"DATABASE_PASSWORD", "DATABASE_ROOT_PASSWORD",
                          "MINIO_STORAGE_ACCESS_KEY", "MINIO_STORAGE_SECRET_KEY", "SECRET_KEY"})


def render(env: Mapping[str, str]) -> str:
    problems = []
    lines = ["# Written by loon-supervisor from config.json. Holds secrets: keep it 0600."]
    for name, value in env.items():
        try:
            lines.append(quote(name, value))
        except ValueError as exc:
            source = CONFIG_SOURCE.get(name)
            where = f"{source} (env {name})" if source else name
            problems.append(Problem(where, f"the value {exc}", "change that value"))
    if problems:
        raise ConfigError(problems, "the env file")
    return "\n".join(lines) + "\n"


def write_env_file(path: Path, env: Mapping[str, str]) -> Path:
    """Write atomically with mode 0600 from the first byte (secrets inside)."""
    text = render(env)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path


def read_env_file(path: Path) -> dict[str, str]:
    """Read it back with python-dotenv's rules (no interpolation), as compose would."""
    values = dotenv_values(path, interpolate=False)
    return {k: v if v is not None else "" for k, v in values.items()}
