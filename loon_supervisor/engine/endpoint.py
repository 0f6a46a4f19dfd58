"""Which Docker engine a run talks to, resolved the way the Docker CLI resolves it.

Order (as in the CLI's resolveContextName): an explicit ``--context``, then ``DOCKER_HOST``,
then ``DOCKER_CONTEXT``, then ``currentContext`` of ``~/.docker/config.json`` (or
``$DOCKER_CONFIG/config.json``), then the local socket. aiodocker reads the context store
(``contexts/meta/<sha256(name)>/meta.json`` and ``contexts/tls``) itself, but it ranks a
context above ``DOCKER_HOST``; deciding the order here keeps the CLI's rule and lets
``status``/``out.log`` say which engine is in use.
"""

from __future__ import annotations

import hashlib
import json
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from loon_supervisor.errors import EngineError

LOCAL_SCHEMES = ("unix://", "npipe://")


@dataclass(frozen=True)
class Endpoint:
    """The engine chosen for this run: its address and the context that named it, if any."""

    host: str
    context: str | None = None
    tls: bool = False
    tls_dir: Path | None = None  # a context's ca.pem/cert.pem/key.pem
    skip_verify: bool = False

    @property
    def is_remote(self) -> bool:
        """True when host paths in the config live on another machine than this one."""
        return not self.host.startswith(LOCAL_SCHEMES)

    def describe(self) -> str:
        """One short phrase for status and out.log, never holding credentials."""
        shown = _without_password(self.host)
        tls = " with TLS" if self.tls else ""
        if self.context:
            return f"context {self.context} ({shown}{tls})"
        return f"{shown}{tls}"


def _without_password(host: str) -> str:
    if "://" in host and "@" in host:
        scheme, rest = host.split("://", 1)
        user, _, where = rest.rpartition("@")
        return f"{scheme}://{user.split(':', 1)[0]}@{where}"
    return host


def docker_config_dir() -> Path:
    """The Docker CLI's config directory (``DOCKER_CONFIG`` or ``~/.docker``)."""
    return Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")


def current_context_name(flag: str | None = None) -> str | None:
    """The context the CLI would use, or None for DOCKER_HOST / the default engine."""
    if flag:
        return flag
    if os.environ.get("DOCKER_HOST"):
        return None
    env = os.environ.get("DOCKER_CONTEXT")
    if env:
        return env
    config = docker_config_dir() / "config.json"
    try:
        name = json.loads(config.read_text()).get("currentContext")
    except (OSError, ValueError, AttributeError):
        return None
    return name if isinstance(name, str) and name else None


def read_context(name: str) -> Endpoint:
    """The docker endpoint stored for context ``name``; EngineError when it is missing."""
    meta_dir = docker_config_dir() / "contexts" / "meta" / hashlib.sha256(name.encode()).hexdigest()
    try:
        meta = json.loads((meta_dir / "meta.json").read_text())
        docker = meta["Endpoints"]["docker"]
        host = docker["Host"]
    except (OSError, ValueError, KeyError, TypeError):
        raise EngineError(f"the Docker context '{name}' is not in {docker_config_dir()}/contexts; "
                          "create it with `docker context create` or choose another with "
                          "--context / DOCKER_CONTEXT") from None
    tls_dir = docker_config_dir() / "contexts" / "tls" / meta_dir.name / "docker"
    tls = host.startswith("tcp://") and tls_dir.is_dir()
    return Endpoint(host=host, context=name, tls=tls, tls_dir=tls_dir if tls else None,
                    skip_verify=bool(docker.get("SkipTLSVerify", False)))


def context_ssl(endpoint: Endpoint) -> ssl.SSLContext | None:
    """The TLS settings of a context's endpoint, from its files in the context store.

    Built here rather than by aiodocker because aiodocker looks for the store only under
    ~/.docker and ignores DOCKER_CONFIG."""
    if endpoint.tls_dir is None:
        return None
    d = endpoint.tls_dir
    ca = d / "ca.pem"
    ctx = ssl.create_default_context(cafile=str(ca) if ca.is_file() else None)
    if endpoint.skip_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if (d / "cert.pem").is_file() and (d / "key.pem").is_file():
        ctx.load_cert_chain(str(d / "cert.pem"), str(d / "key.pem"))
    return ctx


def resolve_endpoint(context_flag: str | None = None) -> Endpoint:
    """Pick the engine for this run (see the module docstring for the order)."""
    name = current_context_name(context_flag)
    if name and name != "default":
        return read_context(name)
    host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    tls = host.startswith("tcp://") and os.environ.get("DOCKER_TLS_VERIFY", "") not in ("", "0")
    return Endpoint(host=host, tls=tls)
