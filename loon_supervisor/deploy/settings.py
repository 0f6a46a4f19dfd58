"""The deploy server's settings: everything is checked before the server binds its port.

The token (and the optional webhook secret) come from a secrets file in env-file syntax
(``DEPLOYMENT_AUTH_TOKEN=...``), read with python-dotenv without interpolation. They are kept
as :class:`pydantic.SecretStr`, so no repr, log line or error message can show them; every
problem found is reported at once as a :class:`~loon_supervisor.errors.ConfigError`, whose
messages name variables and files but never quote a value.
"""

from __future__ import annotations

import re
import ssl
import stat
from dataclasses import dataclass, field
from pathlib import Path

from dotenv import dotenv_values
from pydantic import SecretStr

from loon_supervisor import paths
from loon_supervisor.errors import ConfigError, Problem

DEFAULT_HOST = "0.0.0.0"
DEFAULT_PORT = 5421
TOKEN_VAR = "DEPLOYMENT_AUTH_TOKEN"
DEFAULT_WEBHOOK_SECRET_VAR = "DEPLOYMENT_WEBHOOK_SECRET"
MIN_TOKEN_LENGTH = 32
MAX_BODY_BYTES = 64 * 1024

_TOKEN_RE = re.compile(r"^[\x21-\x7e]+$")  # visible ASCII: survives every HTTP client as is
_BRANCH_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._/-]*$")  # never starts with '-' (git option)
_VAR_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

_MAKE_TOKEN = (
    "create it, e.g. `printf '{var}=%s\\n' \"$(openssl rand -hex 32)\" > {path}"
    " && chmod 600 {path}`"
)


def default_env_file() -> Path:
    """``.build-files/.env.secrets`` in the project: where the seed kept it."""
    return paths.build_files_dir() / ".env.secrets"


def default_config_file() -> Path:
    return paths.project_root() / "config.json"


def default_logs_root() -> Path:
    """Each deploy gets ``<this>/<deploy id>/`` (deploy.log, status.json, session logs)."""
    return paths.logs_dir() / "deploys"


@dataclass(frozen=True)
class ServerSettings:
    token: SecretStr
    config_file: Path
    logs_root: Path
    repo_dir: Path
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    webhook_secret: SecretStr | None = None
    git_branch: str | None = None
    ssl_context: ssl.SSLContext | None = field(default=None, repr=False)
    max_body_bytes: int = MAX_BODY_BYTES
    warnings: tuple[str, ...] = ()

    @property
    def scheme(self) -> str:
        return "https" if self.ssl_context else "http"


def _read_secrets(env_file: Path, problems: list[Problem]) -> dict[str, str]:
    name = str(env_file)
    if not env_file.exists():
        where = "" if env_file.is_absolute() else f" (looked for {env_file.absolute()})"
        problems.append(Problem(name, f"secrets file not found{where}",
                                _MAKE_TOKEN.format(var=TOKEN_VAR, path=env_file)
                                + ", or pass --env-file"))
        return {}
    if not env_file.is_file():
        problems.append(Problem(name, "is not a regular file", "pass the secrets file itself"))
        return {}
    try:
        with env_file.open(encoding="utf-8") as fh:
            values = dotenv_values(stream=fh, interpolate=False)
    except (OSError, UnicodeDecodeError) as exc:
        # The exception text names the file and the reason, never the file's content.
        problems.append(Problem(name, f"cannot be read ({type(exc).__name__})",
                                "make it readable by the user running the deploy server"))
        return {}
    return {k: v for k, v in values.items() if v is not None}


def _check_token(env_file: Path, values: dict[str, str], problems: list[Problem]) -> SecretStr:
    token = values.get(TOKEN_VAR, "")
    where = f"{env_file}: {TOKEN_VAR}"
    if not token:
        problems.append(Problem(where, "is missing or empty; the deploy server never runs "
                                "without a token", _MAKE_TOKEN.format(var=TOKEN_VAR, path=env_file)
                                .replace("create it", "set it")))
    elif len(token) < MIN_TOKEN_LENGTH:
        problems.append(Problem(where, f"is shorter than {MIN_TOKEN_LENGTH} characters",
                                "use a long random value, e.g. `openssl rand -hex 32`"))
    elif not _TOKEN_RE.match(token):
        problems.append(Problem(where, "contains spaces, control or non-ASCII characters",
                                "use a random value such as `openssl rand -hex 32` prints"))
    return SecretStr(token)


def _check_webhook_secret(env_file: Path, values: dict[str, str], var: str | None,
                          problems: list[Problem]) -> SecretStr | None:
    explicit = var is not None
    var = var or DEFAULT_WEBHOOK_SECRET_VAR
    if not _VAR_RE.match(var):
        problems.append(Problem("--webhook-secret-env", "is not a variable name",
                                f"use letters, digits and _, e.g. {DEFAULT_WEBHOOK_SECRET_VAR}"))
        return None
    secret = values.get(var)
    if secret is None and not explicit:
        return None  # not configured: no signature check
    where = f"{env_file}: {var}"
    if not secret:
        problems.append(Problem(where, "is missing or empty but was asked for with "
                                "--webhook-secret-env" if explicit else "is empty",
                                f"set {var} in the secrets file, e.g. to `openssl rand -hex 32`"))
        return None
    if len(secret) < 16:
        problems.append(Problem(where, "is shorter than 16 characters",
                                "use a long random value, e.g. `openssl rand -hex 32`"))
    return SecretStr(secret)


def _ssl_context(cert: Path | None, key: Path | None, problems: list[Problem]
                 ) -> ssl.SSLContext | None:
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        problems.append(Problem("--tls-cert/--tls-key", "only one of them was given",
                                "pass both the certificate and its private key, or neither"))
        return None
    missing = [p for p in (cert, key) if not p.is_file()]
    for p in missing:
        problems.append(Problem(str(p), "file not found", "pass an existing PEM file"))
    if missing:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        problems.append(Problem(f"{cert} / {key}", f"cannot be loaded as a certificate and its "
                                f"key ({exc.__class__.__name__}: {exc.strerror or exc})",
                                "pass a PEM certificate (chain) and the matching PEM key"))
        return None
    return ctx


def load_settings(
    env_file: Path | None = None,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    config_file: Path | None = None,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    git_branch: str | None = None,
    webhook_secret_env: str | None = None,
    logs_root: Path | None = None,
    repo_dir: Path | None = None,
) -> ServerSettings:
    """Check everything; raise ConfigError listing every problem (no value is ever quoted)."""
    problems: list[Problem] = []
    warnings: list[str] = []
    env_file = env_file or default_env_file()
    values = _read_secrets(env_file, problems)
    token = _check_token(env_file, values, problems) if not problems else SecretStr("")
    webhook = _check_webhook_secret(env_file, values, webhook_secret_env, problems)
    if values and env_file.exists():
        mode = stat.S_IMODE(env_file.stat().st_mode)
        if mode & 0o077:
            warnings.append(f"{env_file} is readable by other users (mode {mode:o}); "
                            f"run: chmod 600 {env_file}")
    if not 0 <= port <= 65535:
        problems.append(Problem("--port", f"{port} is not a TCP port", "use 1-65535"))
    config_file = (config_file or default_config_file()).absolute()
    if not config_file.is_file():
        problems.append(Problem(str(config_file), "config file not found",
                                "create it (see config.example.json) or pass --config-file"))
    repo_dir = (repo_dir or paths.project_root()).absolute()
    if git_branch is not None:
        if not _BRANCH_RE.match(git_branch) or ".." in git_branch:
            problems.append(Problem("--git-branch", "is not a plain branch name",
                                    "pass a branch such as main or release/1.2"))
        if not (repo_dir / ".git").exists():
            problems.append(Problem(str(repo_dir), "is not a git working copy, so --git-branch "
                                    "cannot update it", "clone the project with git, or drop "
                                    "--git-branch"))
    ssl_context = _ssl_context(tls_cert, tls_key, problems)
    if problems:
        raise ConfigError(problems, "the deploy server's settings")
    if ssl_context is None and host not in ("127.0.0.1", "::1", "localhost"):
        warnings.append("serving plain HTTP: the token crosses the network readable by anyone "
                        "on the path; pass --tls-cert and --tls-key, or put a TLS proxy in front")
    return ServerSettings(
        token=token,
        webhook_secret=webhook,
        host=host,
        port=port,
        config_file=config_file,
        logs_root=(logs_root or default_logs_root()).absolute(),
        repo_dir=repo_dir,
        git_branch=git_branch,
        ssl_context=ssl_context,
        warnings=tuple(warnings),
    )

