"""Which Docker engine to talk to, decided the way the docker CLI decides it.

Order: ``--context NAME`` (``loon``; it sets ``DOCKER_CONTEXT`` and drops ``DOCKER_HOST`` so
the background logger inherits the choice), then ``DOCKER_HOST`` (with ``DOCKER_TLS_VERIFY``
and ``DOCKER_CERT_PATH`` for ``tcp://``), then ``DOCKER_CONTEXT``, then the CLI's current
context (``~/.docker/config.json``), then the local socket. aiodocker reads the context store
itself; this module only decides what to pass it and how to name the engine to operators.

An engine is *remote* when it is not reached through a local socket: then the host paths in
config.json (volumes) are paths on the engine's machine, not this one. ``build.py -i``
(``LOON_USE_DID=1``: run inside a container with the host's socket mounted, "Docker in
Docker") makes a local socket count as remote for paths too: the engine is the host's, and so
are the paths it binds. Only the log fast path still tries the host directory
(:attr:`Endpoint.socket_remote`): it works when the project is mounted at the same path in
this container, and falls back to exec when the engine does not see it
(:meth:`loon_supervisor.streams.sources.choice.Sources.verify`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

LOCAL_SCHEMES = ("unix", "npipe")
DEFAULT_SOCKET = "unix:///var/run/docker.sock"
USE_DID_VARIABLE = "LOON_USE_DID"


@dataclass(frozen=True)
class Endpoint:
    """The engine a verb will use: its address, where that came from, and TLS."""

    host: str
    source: str
    context: str | None = None
    tls: bool = False
    # build.py -i: this process runs in a container; the engine's paths are the host's.
    did: bool = False

    @property
    def socket_remote(self) -> bool:
        """Reached over the network (not a local socket)."""
        return urlparse(self.host).scheme not in LOCAL_SCHEMES

    @property
    def remote(self) -> bool:
        """The engine's paths are not this machine's: over the network, or ``-i``."""
        return self.socket_remote or self.did

    def describe(self) -> str:
        """``ssh://root@lab (DOCKER_HOST)`` -- never a password from the URL."""
        parsed = urlparse(self.host)
        host = self.host
        if parsed.password:
            host = host.replace(f":{parsed.password}@", ":***@")
        extras = [self.source] + (["TLS"] if self.tls else []) + (
            ["remote"] if self.socket_remote else ["local"]) + (
            ["from a container: host paths (-i)"] if self.did else [])
        return f"{host} ({', '.join(extras)})"


def use_context(name: str) -> None:
    """``--context NAME``: wins over DOCKER_HOST, and child processes inherit it."""
    os.environ["DOCKER_CONTEXT"] = name
    os.environ.pop("DOCKER_HOST", None)


def _current_context(environ: dict[str, str], home: Path) -> str | None:
    name = environ.get("DOCKER_CONTEXT")
    if name:
        return name
    try:
        config = json.loads((home / ".docker" / "config.json").read_text())
    except (OSError, ValueError):
        return None
    value = config.get("currentContext") if isinstance(config, dict) else None
    return value if isinstance(value, str) and value else None


def context_host(name: str, home: Path) -> tuple[str | None, bool]:
    """The docker endpoint of a context in the CLI's store, and whether it has TLS data."""
    import hashlib

    digest = hashlib.sha256(name.encode()).hexdigest()
    meta = home / ".docker" / "contexts" / "meta" / digest / "meta.json"
    try:
        data = json.loads(meta.read_text())
        host = data["Endpoints"]["docker"]["Host"]
    except (OSError, ValueError, KeyError, TypeError):
        return None, False
    tls_dir = home / ".docker" / "contexts" / "tls" / digest / "docker"
    return (host if isinstance(host, str) else None), tls_dir.is_dir()


def resolve_endpoint(environ: dict[str, str] | None = None,
                     home: Path | None = None) -> Endpoint:
    """The engine the next ``open_engine()`` reaches; pure: reads env and the CLI's files."""
    env = dict(os.environ) if environ is None else environ
    did = env.get(USE_DID_VARIABLE) == "1"
    home = home or Path(env.get("HOME") or Path.home())
    docker_host = env.get("DOCKER_HOST")
    if docker_host:
        tls = docker_host.startswith(("tcp://", "https://")) and \
            env.get("DOCKER_TLS_VERIFY", "") not in ("", "0")
        return Endpoint(docker_host, "DOCKER_HOST", tls=tls, did=did)
    name = _current_context(env, home)
    if name and name != "default":
        host, tls = context_host(name, home)
        source = "DOCKER_CONTEXT" if env.get("DOCKER_CONTEXT") else "current docker context"
        return Endpoint(host or f"context:{name}", f"{source} {name}"
                        + ("" if host else ", not in the Docker CLI's context store"),
                        context=name, tls=tls, did=did)
    return Endpoint(DEFAULT_SOCKET, "default socket", did=did)
