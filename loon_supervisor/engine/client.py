"""Opening the engine and translating its errors at the boundary."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import aiodocker
import aiohttp

from loon_supervisor.engine.endpoint import Endpoint, context_ssl, resolve_endpoint
from loon_supervisor.errors import EngineError, EngineUnreachable


@contextmanager
def map_engine_errors(doing: str) -> Iterator[None]:
    """Turn aiodocker/aiohttp failures into EngineError with what we were doing."""
    try:
        yield
    except aiodocker.DockerError as exc:
        if exc.status == 900 and "SSL" in str(exc.message):
            raise EngineUnreachable(_tls_sentence(doing, str(exc.message))) from None
        if exc.status == 900:
            raise EngineUnreachable(
                f"cannot reach the Docker engine while {doing}: {exc.message}. Is dockerd "
                "running (see scripts/ensure-docker.sh) and DOCKER_HOST right?"
            ) from None
        raise EngineError(f"the Docker engine refused {doing}: {exc.message}") from None
    except aiohttp.ClientSSLError as exc:
        raise EngineUnreachable(_tls_sentence(doing, str(exc))) from None
    except (aiohttp.ClientError, OSError) as exc:
        raise EngineUnreachable(f"lost the Docker engine while {doing}: {exc}") from None
    except ImportError as exc:
        raise EngineError(f"cannot use this Docker engine: {exc}") from None
    except Exception as exc:
        if type(exc).__module__.startswith(("asyncssh", "aiodocker")):
            raise EngineUnreachable(
                f"cannot reach the Docker engine over ssh while {doing}: {_short(exc)}; "
                "check that `ssh` to that host works with your keys and that it has "
                "`docker` installed"
            ) from None
        raise


def _tls_sentence(doing: str, detail: str) -> str:
    """TLS failures name the certificate files to fix instead of 'is dockerd running'."""
    reason = re.search(r"SSL: (\w+)", detail)
    why = reason.group(1).lower().replace("_", " ") if reason else _short(Exception(detail))
    return (f"the Docker engine and this machine did not agree on TLS while {doing} ({why}); "
            "check the client certificate, key and CA in DOCKER_CERT_PATH (cert.pem, key.pem, "
            "ca.pem) or in the Docker context's TLS files")


def _short(exc: BaseException) -> str:
    """The last, most specific part of a TLS/ssh error, on one line."""
    text = " ".join(str(exc).split())
    return text.rsplit(": ", 1)[-1] if len(text) > 160 else text


def make_client(endpoint: Endpoint) -> aiodocker.Docker:
    """A client for ``endpoint``; aiodocker reads a context's TLS files and DOCKER_CERT_PATH."""
    if endpoint.context:
        ssl_context = context_ssl(endpoint)
        if ssl_context is not None:
            return aiodocker.Docker(url="https://" + endpoint.host.removeprefix("tcp://"),
                                    ssl_context=ssl_context)
    return aiodocker.Docker(url=endpoint.host)


@asynccontextmanager
async def open_engine(endpoint: Endpoint | None = None) -> AsyncIterator[aiodocker.Docker]:
    """One client per run; DOCKER_HOST / DOCKER_CONTEXT / the current context pick the engine."""
    endpoint = endpoint or resolve_endpoint()
    with map_engine_errors("connecting"):
        try:
            docker = make_client(endpoint)
        except (ValueError, OSError) as exc:
            raise EngineError(f"cannot use the Docker engine {endpoint.describe()}: {exc}; "
                              "fix DOCKER_HOST or the Docker context") from None
    try:
        with map_engine_errors("asking for its version"):
            await docker.version()
        yield docker
    finally:
        await docker.close()
