"""How Celery workers on other nodes reach the core's MariaDB, Redis and MinIO.

In one container every service talks to 127.0.0.1. In a swarm the core runs on the node
with the volumes and the workers anywhere, all with host networking, so ``up`` writes two
environments:

* the core's: ``LOON_BIND_ADDRESS`` (the image binds MariaDB and Redis to loopback *and*
  that address, MinIO's API to every address) and ``REDIS_PASSWORD``: a Redis reachable
  from other machines never runs without one (the image refuses to);
* the workers': ``DATABASE_HOST``, the broker URLs (with the password) and the MinIO
  endpoint at that address.

The password is derived from the deployment's SECRET_KEY (HMAC), so it is stable across
redeploys without another secret file, and never printed. The address is
``deploymentSettings.swarmCoreAddress``, or the advertise address of the node labelled
``loon.volumes=true``.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlsplit

from loon_supervisor.engine.records import NodeInfo
from loon_supervisor.engine.swarm import CELERY

LOOPBACK = "127.0.0.1"


def redis_password(secret_key: str) -> str:
    return hmac.new(secret_key.encode(), b"loon-swarm-redis", hashlib.sha256).hexdigest()[:40]


def core_address(nodes: list[NodeInfo], configured: str | None) -> str:
    """The configured address, else the volume node's advertise address (loopback when the
    swarm does not say, as a one-node swarm on a laptop may not)."""
    if configured:
        return configured
    for node in nodes:
        if node.volumes and node.advertise:
            return node.advertise
    return LOOPBACK


def _broker(password: str, host: str, url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme or 'redis'}://:{password}@{host}:{parts.port or 6379}{parts.path}"


def role_environment(env: dict[str, str], address: str, secret_key: str
                     ) -> dict[str, dict[str, str]]:
    """role -> the variables it gets on top of ``env`` (see the module's docstring)."""
    password = redis_password(secret_key)
    broker = env.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
    results = env.get("CELERY_RESULT_BACKEND", broker)
    core = {"LOON_BIND_ADDRESS": address, "REDIS_PASSWORD": password,
            "CELERY_BROKER_URL": _broker(password, LOOPBACK, broker),
            "CELERY_RESULT_BACKEND": _broker(password, LOOPBACK, results)}
    worker = {"DATABASE_HOST": address,
              "CELERY_BROKER_URL": _broker(password, address, broker),
              "CELERY_RESULT_BACKEND": _broker(password, address, results)}
    if env.get("MINIO_STORAGE_ENDPOINT") == f"{LOOPBACK}:9000":  # MinIO in the image
        worker["MINIO_STORAGE_ENDPOINT"] = f"{address}:9000"
    return {"core": core, CELERY: worker}


def broker_target(env: dict[str, str]) -> tuple[str, int]:
    """Where a container's broker URL points (host, port)."""
    parts = urlsplit(env.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"))
    return parts.hostname or LOOPBACK, parts.port or 6379


# Run inside a worker's container: a TCP connect to each (host, port) argument pair; one
# line per pair, "ok" or "fail". python3 where the image has it (Loon's does), else nc.
REACH_PROBE = r"""
probe() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 3).close()' "$1" "$2" 2>/dev/null
    else
        nc -w 3 "$1" "$2" </dev/null >/dev/null 2>&1
    fi
}
while [ $# -ge 2 ]; do
    if probe "$1" "$2"; then echo "ok $1:$2"; else echo "fail $1:$2"; fi
    shift 2
done
"""
