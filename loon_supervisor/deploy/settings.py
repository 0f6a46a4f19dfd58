"""The deploy server's settings: everything is checked before the server binds its port.

The token (and the optional webhook secret) come from a secrets file in env-file syntax
(``DEPLOYMENT_AUTH_TOKEN=...``), read with python-dotenv without interpolation. They are kept
as :class:`pydantic.SecretStr`, so no repr, log line or error message can show them; every
problem found is reported at once as a :class:`~loon_supervisor.errors.ConfigError`, whose
messages name variables and files but never quote a value.
"""

from __future__ import annotations

import io
import ipaddress
import re
import ssl
import stat
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Unpack

from dotenv import dotenv_values
from pydantic import SecretStr

from loon_supervisor import paths
from loon_supervisor.bounded import MiB, UnboundedInput, read_bounded
from loon_supervisor.deploy.fd_budget import fit_descriptors
from loon_supervisor.deploy.options import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    ServerOptions,
    ServerOverrides,
)
from loon_supervisor.deploy.secret_strength import MAKE_ONE, MIN_BITS, guessable
from loon_supervisor.errors import ConfigError, Problem

if TYPE_CHECKING:
    from loon_supervisor.dashboard.passwords import DashboardPasswords

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "ServerSettings", "load_settings"]

TOKEN_VAR = "DEPLOYMENT_AUTH_TOKEN"
DEFAULT_WEBHOOK_SECRET_VAR = "DEPLOYMENT_WEBHOOK_SECRET"
MIN_TOKEN_LENGTH = 32
# aiohttp refuses header lines over 8190 bytes: "Authorization: Bearer " + the token must fit,
# so a longer token could never authenticate. 4096 leaves room and is far above any real token.
MAX_TOKEN_LENGTH = 4096
MAX_BODY_BYTES = 64 * 1024
MAX_SECRETS_BYTES = MiB
"""A secrets file holds a few variables; 1 MiB, like an env file (spec/envfile.py)."""
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")

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
    """Checked settings: the secrets, resolved paths, and the options (limits) as given."""

    token: SecretStr
    config_file: Path
    logs_root: Path
    repo_dir: Path
    opts: ServerOptions = field(default_factory=ServerOptions)
    webhook_secret: SecretStr | None = None
    ssl_context: ssl.SSLContext | None = field(default=None, repr=False)
    allow_from: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    max_body_bytes: int = MAX_BODY_BYTES
    warnings: tuple[str, ...] = ()
    dashboard: DashboardPasswords | None = field(default=None, repr=False)
    webhooks: bool = True  # False: `loon dashboard` alone, no POST /deploy and no token

    @property
    def host(self) -> str:
        return self.opts.host

    @property
    def port(self) -> int:
        return self.opts.port

    @property
    def git_branch(self) -> str | None:
        return self.opts.git_branch

    @property
    def scheme(self) -> str:
        return "https" if self.ssl_context else "http"


def _read_secrets(env_file: Path, problems: list[Problem]) -> tuple[dict[str, str], str]:
    """The file's variables and its text, read once and at most :data:`MAX_SECRETS_BYTES`
    (a huge file, a device or a pipe is refused, never read without end)."""
    name = str(env_file)
    if not env_file.exists():
        where = "" if env_file.is_absolute() else f" (looked for {env_file.absolute()})"
        problems.append(Problem(name, f"secrets file not found{where}",
                                _MAKE_TOKEN.format(var=TOKEN_VAR, path=env_file)
                                + ", or pass --env-file"))
        return {}, ""
    if not env_file.is_file():
        problems.append(Problem(name, "is not a regular file (a device, a pipe or a folder)",
                                "pass the secrets file itself"))
        return {}, ""
    try:
        # read_bounded opens without blocking: a file swapped for a FIFO after the check
        # above times out with a sentence instead of hanging the start.
        text = read_bounded(env_file, MAX_SECRETS_BYTES).decode("utf-8")
    except UnboundedInput as exc:
        problems.append(Problem(name, str(exc).partition("; ")[0],
                                "pass the secrets file itself (a few lines of NAME=value)"))
        return {}, ""
    except (OSError, UnicodeDecodeError) as exc:
        # The exception text names the file and the reason, never the file's content.
        problems.append(Problem(name, f"cannot be read ({type(exc).__name__})",
                                "make it readable by the user running the deploy server"))
        return {}, ""
    values = dotenv_values(stream=io.StringIO(text), interpolate=False)
    return {k: v for k, v in values.items() if v is not None}, text


def _comment_cut(text: str, var: str) -> bool:
    """True when the variable's unquoted value holds ``#`` after a space or at its start:
    the env-file syntax reads the rest as a comment, so the value read is cut short."""
    pattern = re.compile(rf"^\s*(?:export\s+)?{re.escape(var)}\s*=\s*(.*)$")
    for line in text.splitlines():
        m = pattern.match(line)
        if m and m.group(1)[:1] not in ("'", '"') and re.search(r"(^|\s)#", m.group(1)):
            return True
    return False


def _check_token(env_file: Path, values: dict[str, str], text: str,
                 problems: list[Problem]) -> SecretStr:
    token = values.get(TOKEN_VAR, "")
    where = f"{env_file}: {TOKEN_VAR}"
    if _comment_cut(text, TOKEN_VAR):
        problems.append(Problem(where, "contains a '#' at its start or after a space, which the "
                                "secrets-file syntax reads as the start of a comment",
                                "put the value in single quotes, or use a token without '#' "
                                "such as `openssl rand -hex 32` prints"))
    elif not token:
        problems.append(Problem(where, "is missing or empty; the deploy server never runs "
                                "without a token", _MAKE_TOKEN.format(var=TOKEN_VAR, path=env_file)
                                .replace("create it", "set it")))
    elif len(token) < MIN_TOKEN_LENGTH:
        problems.append(Problem(where, f"is shorter than {MIN_TOKEN_LENGTH} characters",
                                "use a long random value, e.g. `openssl rand -hex 32`"))
    elif len(token) > MAX_TOKEN_LENGTH:
        problems.append(Problem(where, f"is longer than {MAX_TOKEN_LENGTH} characters, more "
                                "than an HTTP header can carry",
                                "use a shorter random value, e.g. `openssl rand -hex 32`"))
    elif not _TOKEN_RE.match(token):
        problems.append(Problem(where, "contains spaces, control or non-ASCII characters",
                                "use a random value such as `openssl rand -hex 32` prints"))
    elif guessable(token):
        problems.append(_guessable(where))
    return SecretStr(token)


def _guessable(where: str) -> Problem:
    return Problem(where, f"looks guessable: repeats, sequences, common words or too few "
                   f"different characters leave less than {MIN_BITS} bits of randomness",
                   f"make one with a generator, e.g. {MAKE_ONE}")


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
    elif guessable(secret):
        problems.append(_guessable(where))
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


def _networks(texts: list[str], option: str, problems: list[Problem]
              ) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    nets = []
    for text in texts:
        try:
            nets.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            problems.append(Problem(option, f"{text!r} is not an address or network",
                                    "pass e.g. 192.0.2.10 or 192.0.2.0/24"))
    return tuple(nets)


def _check_limits(opts: ServerOptions, problems: list[Problem]) -> None:
    for name in ("deploy_timeout", "kill_grace", "header_timeout", "keepalive_timeout",
                 "body_timeout", "tls_handshake_timeout"):
        if not getattr(opts, name) > 0:
            problems.append(Problem("--" + name.replace("_", "-"), "must be above 0 seconds",
                                    "pass a number of seconds such as 10"))
    for name in ("keep_deploys", "max_connections", "max_connections_per_client",
                 "max_auth_failures"):
        if getattr(opts, name) < 1:
            problems.append(Problem("--" + name.replace("_", "-"), "must be at least 1",
                                    "pass a positive whole number"))


def load_settings(env_file: Path | None = None, opts: ServerOptions | None = None,
                  *, webhooks: bool = True,
                  **overrides: Unpack[ServerOverrides]) -> ServerSettings:
    """Check everything; raise ConfigError listing every problem (no value is ever quoted).

    ``webhooks=False`` is ``loon dashboard`` alone: no deploy token, a dashboard password.

    ``overrides`` are :class:`ServerOptions` fields (tests: ``host="127.0.0.1", port=0``);
    ``logs_root`` is accepted for ``logs_dir``.
    """
    given: dict[str, Any] = dict(overrides)  # checked by the signature
    if "logs_root" in given:
        given["logs_dir"] = given.pop("logs_root")
    opts = replace(opts or ServerOptions(), **given)
    if env_file is not None:
        opts = replace(opts, env_file=env_file)
    problems: list[Problem] = []
    warnings: list[str] = []
    env_file = opts.env_file or default_env_file()
    values, text = _read_secrets(env_file, problems)
    token = (_check_token(env_file, values, text, problems) if not problems and webhooks
             else SecretStr(""))
    webhook = (_check_webhook_secret(env_file, values, opts.webhook_secret_env, problems)
               if webhooks else None)
    from loon_supervisor.dashboard.passwords import read_passwords  # (import cycle)

    dashboard = read_passwords(str(env_file), values, [token.get_secret_value()] + (
        [webhook.get_secret_value()] if webhook else []), required=not webhooks,
        problems=problems) if values or (not webhooks and not problems) else None
    if values and env_file.exists():
        mode = stat.S_IMODE(env_file.stat().st_mode)
        if mode & 0o077:
            problems.append(Problem(str(env_file), f"is readable or writable by other users "
                                    f"(mode {mode:o}) and holds the deploy token",
                                    f"run: chmod 600 {env_file}"))
    if (webhook is not None and token.get_secret_value()
            and webhook.get_secret_value() == token.get_secret_value()):
        problems.append(Problem(f"{env_file}: {opts.webhook_secret_env or DEFAULT_WEBHOOK_SECRET_VAR}",
                                f"is the same value as {TOKEN_VAR}",
                                "use two different random values (`openssl rand -hex 32` twice)"))
    if not 0 <= opts.port <= 65535:
        problems.append(Problem("--port", f"{opts.port} is not a TCP port", "use 1-65535"))
    _check_limits(opts, problems)
    if not problems:
        opts = fit_descriptors(opts, warnings, problems)
    allow_from = _networks(opts.allow_from, "--allow-from", problems)
    trusted_proxies = _networks(opts.trusted_proxy, "--trusted-proxy", problems)
    config_file = (opts.config_file or default_config_file()).absolute()
    if not config_file.is_file():
        problems.append(Problem(str(config_file), "config file not found",
                                "create it (see config.example.json) or pass --config-file"))
    repo_dir = (opts.repo_dir or paths.project_root()).absolute()
    git_branch = opts.git_branch
    if git_branch is not None:
        if not _BRANCH_RE.match(git_branch) or ".." in git_branch:
            problems.append(Problem("--git-branch", "is not a plain branch name",
                                    "pass a branch such as main or release/1.2"))
        if not (repo_dir / ".git").exists():
            problems.append(Problem(str(repo_dir), "is not a git working copy, so --git-branch "
                                    "cannot update it", "clone the project with git, or drop "
                                    "--git-branch"))
    if opts.require_ref is not None and (not _BRANCH_RE.match(opts.require_ref)
                                         or ".." in opts.require_ref):
        problems.append(Problem("--require-ref", "is not a plain branch name",
                                "pass a branch such as main"))
    ssl_context = _ssl_context(opts.tls_cert, opts.tls_key, problems)
    if (ssl_context is None and not problems and opts.host not in LOOPBACK_HOSTS
            and not opts.behind_tls_proxy):
        problems.append(Problem("--host", f"{opts.host} is not a loopback address and no TLS "
                                "certificate was given, so the token would cross the network "
                                "in clear text", "pass --tls-cert and --tls-key, or listen on "
                                "127.0.0.1 behind a TLS proxy (--behind-tls-proxy if the proxy "
                                "reaches this server over the network)"))
    if problems:
        raise ConfigError(problems, "the deploy server's settings")
    if webhook is None and webhooks:
        warnings.append("no webhook secret: nothing but TLS and the token protects against a "
                        "replayed request, and every replay is a redeploy; set "
                        f"{DEFAULT_WEBHOOK_SECRET_VAR} (e.g. `openssl rand -hex 32`) and sign "
                        "a body naming the commit (docs/deploy-server.md)")
    return ServerSettings(
        token=token,
        webhook_secret=webhook,
        opts=opts,
        config_file=config_file,
        logs_root=(opts.logs_dir or default_logs_root()).absolute(),
        repo_dir=repo_dir,
        ssl_context=ssl_context,
        allow_from=allow_from,
        trusted_proxies=trusted_proxies,
        warnings=tuple(warnings),
        dashboard=dashboard,
        webhooks=webhooks,
    )
