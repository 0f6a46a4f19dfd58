"""The env file: every variable Loon's services read, written so that both docker compose's
env-file parser and python-dotenv read each value back exactly.

Quoting (hand-written: no library writes env files for both readers; rules checked against
compose-go's dotenv/parser.go and python-dotenv's parser):

* no ``'`` and no ``\\``: single quotes, which both read literally;
* else, when there is no ``$`` (compose interpolates it inside double quotes) and the value
  neither starts nor ends with ``"`` nor ends with ``\\`` (compose trims quote characters at
  the edges and treats ``\\"`` as escaped): double quotes with ``\\`` and ``"`` escaped;
* else, when there is no ``#``, ``$`` or edge whitespace and no leading quote: unquoted;
* otherwise no form reads back alike in both: double quotes with ``\\`` and ``"`` escaped,
  which python-dotenv (and so the supervisor, which hands the container its environment
  itself) reads back exactly; compose would not, so the operator is warned once, by the
  variable's name, never its value (:func:`compose_warnings`).

Only a line break or NUL is rejected: no env file line can hold one.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from dotenv import dotenv_values

from loon_supervisor.bounded import UnboundedInput, read_bounded
from loon_supervisor.errors import ConfigError, Problem
from loon_supervisor.spec.client_env import client_environment

if TYPE_CHECKING:  # annotations only: `build.py -e` on an unchanged config skips pydantic
    from loon_supervisor.config.model import LoonConfig

MYSQL_TARGET = "/var/lib/mysql"
MINIO_TARGET = "/var/lib/minio"
MEDIA_TARGET = "/var/lib/loon/media"  # uploads without MinIO (Django's file-system storage)
LOCAL_DATA_TARGET = "/app/data"
S3_CA_TARGET = "/etc/loon/s3-ca.pem"  # minioSettings.caBundle, mounted read-only


def _compose_form(value: str) -> str | None:
    """The value's text that docker compose and python-dotenv both read back exactly."""
    if "'" not in value and "\\" not in value:
        return f"'{value}'"
    if "$" not in value and not value.startswith('"') and not value.endswith(('"', "\\")):
        return _dotenv_form(value)
    if value and not any(c in value for c in "#$") and value == value.strip() \
            and value[0] not in "'\"":
        return value
    return None


def _dotenv_form(value: str) -> str:
    """Double quotes, ``\\`` and ``"`` escaped: python-dotenv reads any value back exactly."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def compose_reads_differently(value: str) -> bool:
    """True when docker compose would not read this value's line back exactly."""
    return _compose_form(value) is None


def quote(name: str, value: str) -> str:
    """One ``NAME=value`` line that python-dotenv reads back exactly (and compose too where
    any form allows it); raises ValueError only for a line break or NUL."""
    if "\n" in value or "\r" in value or "\0" in value:
        raise ValueError("contains a line break or NUL, which an env file cannot hold")
    form = _compose_form(value)
    return f"{name}={form if form is not None else _dotenv_form(value)}"


def compose_warnings(env: Mapping[str, str]) -> list[str]:
    """One warning per variable docker compose would read differently (names, never values)."""
    out = []
    for name, value in env.items():
        if compose_reads_differently(value):
            source = CONFIG_SOURCE.get(name)
            where = f"{name} ({source})" if source else name
            out.append(f"warning: docker compose would read {where} differently from the env "
                       "file (it mixes ' or \\ with $, # or edge quotes); Loon gets it exactly, "
                       "since the supervisor hands the container its environment itself")
    return out


RESERVED_NAMES = frozenset({".env.secrets", "dev.env"})
"""Env-file names other parts of the tool own (the deploy server's secrets file, the file
``loon dev`` writes for a host-run server)."""


def check_env_file_name(name: str) -> None:
    """Confine ``--env-file`` to names that cannot be one of the project's own files.

    :raises ConfigError: naming the flag and the fix.
    """
    def bad(what: str) -> ConfigError:
        return ConfigError([Problem("--env-file", f"{name!r} {what}",
                                    "give a name such as .env or production.env; it is "
                                    "written to .build-files/")])
    if not name or len(name) > 200:
        raise bad("must be 1 to 200 characters long")
    if "/" in name or "\\" in name or name in (".", ".."):
        raise bad("is not a plain file name (no path separators)")
    if any(not c.isprintable() or c.isspace() for c in name):
        raise bad("contains a space, line break or control character")
    if name.startswith((".secret-key", ".validated")) or name in RESERVED_NAMES:
        raise bad("is a file this tool keeps for itself")
    if not (name.startswith(".env") or name.endswith(".env")) or name.endswith(".tmp"):
        raise bad("must start with .env or end in .env (so it cannot replace a project file)")


SECRET_KEY_MIN = 32


def _secret_key_path(build_dir: Path, deployment: str) -> Path:
    from loon_supervisor.paths import build_file

    return build_file(f".secret-key.{deployment}", build_dir)


def read_secret_key(build_dir: Path, deployment: str) -> str | None:
    """The deployment's kept key, validated; None when there is none yet.

    :raises ConfigError: naming the file when it is empty, unreadable or not one line.
    """
    path = _secret_key_path(build_dir, deployment)
    if not path.exists() and not path.is_symlink():
        return None
    fix = f"delete {path} to have a new key generated, or write one line of at least " \
          f"{SECRET_KEY_MIN} characters into it"
    try:
        key = read_bounded(path, 64 * 1024).decode("utf-8").strip()
    except UnboundedInput as exc:
        raise ConfigError([Problem(str(path), str(exc).partition("; ")[0], fix)]) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise ConfigError([Problem(str(path), f"cannot be read ({reason})", fix)]) from None
    if len(key) < SECRET_KEY_MIN:
        what = "is empty" if not key else f"holds a key of {len(key)} characters"
        raise ConfigError([Problem(str(path), f"{what}; Django's SECRET_KEY needs at least "
                                   f"{SECRET_KEY_MIN}", fix)])
    if any(c.isspace() or not c.isprintable() for c in key):
        raise ConfigError([Problem(str(path), "holds more than one line or spaces", fix)])
    try:
        quote("SECRET_KEY", key)
    except ValueError as exc:
        raise ConfigError([Problem(str(path), f"the key {exc}", fix)]) from None
    return key


def new_secret_key() -> str:
    """A fresh random key (64 URL-safe characters); kept only once everything validated."""
    return secrets.token_urlsafe(48)


def save_secret_key(build_dir: Path, deployment: str, key: str) -> str:
    """Keep a new key (mode 0600); when another run saved one first, that one wins."""
    path = _secret_key_path(build_dir, deployment)
    build_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read_secret_key(build_dir, deployment) or key
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return key


def secret_key(build_dir: Path, deployment: str) -> str:
    """A random Django SECRET_KEY per deployment, kept across runs (never a constant)."""
    return read_secret_key(build_dir, deployment) or save_secret_key(
        build_dir, deployment, new_secret_key())


def minio_known_absent(config: LoonConfig) -> bool:
    """True when MinIO cannot be in the image this config builds, known before any build:
    ``deploymentSettings.minioSourceUrl`` is null (a pulled image decides for itself)."""
    d = config.deploymentSettings
    return config.minio is not None and not config.minio.external and not d.image \
        and not d.minioSourceUrl


def _external_store(config: LoonConfig) -> dict[str, str]:
    """The variables of an external S3-compatible store (minioSettings.endpointUrl).

    Loon's settings read MINIO_STORAGE_ENDPOINT (host:port), the keys and the bucket names
    but hard-code ``MINIO_STORAGE_USE_HTTPS = False``; the deployment settings module
    (loon_deployment_settings.py) reads the others and sets what Loon's settings cannot.
    """
    ext = config.external_store
    url = ext.endpointUrl if ext is not None else None
    if ext is None or url is None:
        return {"LOON_S3_EXTERNAL": "false", "LOON_S3_ENDPOINT_URL": "",
                "MINIO_STORAGE_USE_HTTPS": "false", "MINIO_STORAGE_REGION": "",
                "LOON_S3_TLS_VERIFY": "true", "LOON_S3_CA_BUNDLE": ""}
    https = url.startswith("https://")
    return {"LOON_S3_EXTERNAL": "true", "LOON_S3_ENDPOINT_URL": url,
            "MINIO_STORAGE_USE_HTTPS": "true" if https else "false",
            "MINIO_STORAGE_REGION": ext.region or "",
            "LOON_S3_TLS_VERIFY": "true" if ext.tlsVerify or not https else "false",
            "LOON_S3_CA_BUNDLE": S3_CA_TARGET if ext.caBundle else ""}


def environment(config: LoonConfig, key: str, minio_in_image: bool = True) -> dict[str, str]:
    """Every variable, in a fixed order; services inside the container use localhost.

    ``minio_in_image`` is False once the build left MinIO out: Loon's settings then must not
    use MinIO storage (MINIO_ENABLED=false), or every start of server and celery dies. An
    external store (minioSettings.endpointUrl) keeps MINIO_ENABLED=true without MinIO in the
    image: Loon's MinIO storage then talks to that store.
    """
    g = config.generalSettings
    m = config.mySqlSettings
    scheme = "http" if g.useHttp else "https"
    base = f"{scheme}://{g.baseUrl}"
    external = config.external_store
    minio = config.minio if minio_in_image or external else None
    nginx = config.nginxSettings
    ssl_dir = nginx.targetVolumeLocation if nginx and not g.useHttp else ""
    local = config.local_data
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
        "MINIO_STORAGE_ENDPOINT": (external.endpointUrl or "").partition("://")[2]
        if external else "127.0.0.1:9000",
        "MINIO_STORAGE_MEDIA_BUCKET_NAME": external.media_bucket if external else "data",
        **_external_store(config),
        "MINIO_STORAGE_STATIC_BUCKET_NAME": "static",
        # Without a scheme, as upstream's build.py writes them: Loon's settings prepend
        # the site's own (SITE_PREFIX from USE_HTTP) to both.
        "MINIO_STORAGE_MEDIA_URL": f"{g.baseUrl}/data",
        "MINIO_STORAGE_STATIC_URL": f"{g.baseUrl}/static",
        "MINIO_BROWSER_REDIRECT_URL": f"{base}/minio/",
        "MINIO_RUN_AS": (minio.userGroupPermissions or "") if minio else "",
        "LOON_MEDIA_DIR": MEDIA_TARGET,
        "USE_HTTP": "true" if g.useHttp else "false",
        **client_environment(config),
        "SSL_CERT_FILE": f"{ssl_dir}/{nginx.certFileLocation}" if ssl_dir and nginx else "",
        "SSL_KEY_FILE": f"{ssl_dir}/{nginx.keyFileLocation}" if ssl_dir and nginx else "",
        "SSL_TARGET_MOUNTED_DIRECTORY": ssl_dir,
        "LOCAL_DATA_VOLUME_LOCATION": local.sourceVolumeLocation if local else "",
        "ALLOWED_HOST": config.allowed_host,
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
    "VITE_EXPERIMENT_VISIBILITY_CONTROL": "generalSettings.experimentVisibilityControl",
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
    """Write atomically with mode 0600 from the first byte (secrets inside).

    A unique temporary name (concurrent writers cannot clash), fsync before the rename, and
    no temporary file left behind on any failure.
    """
    text = render(env)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir():
        raise ConfigError([Problem("--env-file", f"{path} is a directory",
                                   "remove it or choose another --env-file name")])
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def read_env_file(path: Path) -> dict[str, str]:
    """Read it back with python-dotenv's rules (no interpolation), as compose would; at most
    1 MiB (an env file is a few KiB; a device or an endless pipe is refused).

    :raises UnboundedInput: naming the file.
    :raises OSError: as open would (the verbs turn it into one sentence).
    """
    import io

    try:
        raw = read_bounded(path, 1024 * 1024)
    except UnboundedInput as exc:
        raise UnboundedInput(f"{path} {exc}") from None
    values = dotenv_values(stream=io.StringIO(raw.decode("utf-8", errors="replace")),
                           interpolate=False)
    return {k: v if v is not None else "" for k, v in values.items()}
