"""Opening the engine and translating its errors at the boundary."""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any

import aiodocker
import aiohttp
import anyio

from loon_supervisor.engine.endpoint import resolve_endpoint
from loon_supervisor.errors import EngineError, EngineUnreachable

if TYPE_CHECKING:
    from loon_supervisor.engine.docker_engine import DockerEngine

Handler = Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object]


def _tls_failure(exc: BaseException) -> bool:
    return isinstance(exc, ssl.SSLError | aiohttp.ClientSSLError) or isinstance(
        getattr(exc, "__cause__", None) or getattr(exc, "os_error", None), ssl.SSLError)


def _ssl_reason(text: str) -> str:
    """The ``[SSL: ...] reason`` part of an aiohttp/ssl message, else the whole text."""
    start = text.find("[SSL")
    return text[start:].split(" (_ssl.c")[0].strip("[] ") if start >= 0 else text


def _tls_sentence(doing: str, reason: str) -> str:
    where = resolve_endpoint().describe()
    return (f"the TLS handshake with the Docker engine at {where} failed while {doing} "
            f"({reason}): DOCKER_CERT_PATH (or the context's TLS files) must hold the "
            "ca.pem, cert.pem and key.pem this engine trusts")


@contextmanager
def map_engine_errors(doing: str) -> Iterator[None]:
    """Turn aiodocker/aiohttp failures into EngineError with what we were doing."""
    try:
        yield
    except aiodocker.DockerError as exc:
        if exc.status == 900 and any(w in str(exc.message) for w in ("SSL", "certificate")):
            raise EngineUnreachable(_tls_sentence(doing, _ssl_reason(str(exc.message)))) from None
        if exc.status == 900:
            raise EngineUnreachable(
                f"cannot reach the Docker engine while {doing}: {exc.message}. Is dockerd "
                "running (see scripts/ensure-docker.sh) and DOCKER_HOST right?"
            ) from None
        raise EngineError(f"the Docker engine refused {doing}: {exc.message}") from None
    except (aiohttp.ClientError, OSError) as exc:
        if _tls_failure(exc):
            raise EngineUnreachable(_tls_sentence(doing, _ssl_reason(str(exc)))) from None
        raise EngineUnreachable(f"lost the Docker engine while {doing}: {exc}") from None


def _client() -> aiodocker.Docker:
    """DOCKER_HOST wins over contexts, as in the docker CLI; aiodocker reads the rest
    (DOCKER_CONTEXT, the current context, TLS files, the local socket) itself."""
    host = os.environ.get("DOCKER_HOST")
    try:
        return aiodocker.Docker(url=host) if host else aiodocker.Docker()
    except aiodocker.DockerError as exc:
        raise EngineUnreachable(f"cannot use the Docker engine {resolve_endpoint().describe()}:"
                                f" {exc.message}") from None
    except (ValueError, OSError) as exc:
        raise EngineUnreachable(f"cannot use the Docker engine {resolve_endpoint().describe()}:"
                                f" {exc}; check DOCKER_HOST, DOCKER_CONTEXT or --context") from None
    except Exception as exc:  # aiodocker's context errors have no common public base
        engine = resolve_endpoint()
        raise EngineUnreachable(
            f"cannot use the Docker engine {engine.describe()}: {exc}; list the contexts "
            "with `docker context ls` and pick one with --context or DOCKER_CONTEXT"
        ) from None


@asynccontextmanager
async def open_engine_at(url: str) -> AsyncIterator[DockerEngine]:
    """A second engine, named by URL (a swarm node's, from swarmNodeEngines)."""
    from loon_supervisor.engine.docker_engine import DockerEngine

    try:
        docker = aiodocker.Docker(url=url)
    except (aiodocker.DockerError, ValueError, OSError) as exc:
        raise EngineUnreachable(f"cannot use the Docker engine {url}: {exc}") from None
    try:
        try:
            await docker.version()
        except aiodocker.DockerError as exc:
            how = "cannot reach" if exc.status == 900 else "refused by"  # 900: no connection
            raise EngineUnreachable(f"{how} the engine at {url}: {exc.message}") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise EngineUnreachable(f"cannot reach the engine at {url}: {exc}") from None
        yield DockerEngine(docker)
    finally:
        await docker.close()


@asynccontextmanager
async def open_engine() -> AsyncIterator[DockerEngine]:
    """One client per run (see :mod:`loon_supervisor.engine.endpoint` for which engine)."""
    from loon_supervisor.engine.docker_engine import DockerEngine

    docker = _client()
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    loop.set_exception_handler(_quiet_ssh_relay_loss(previous))
    try:
        with map_engine_errors("asking for its version"):
            await docker.version()
        yield DockerEngine(docker)
    finally:
        try:
            await docker.close()
        finally:
            loop.set_exception_handler(previous)


async def answers_anew(timeout: float = 5.0) -> bool:
    """Whether the engine accepts a *new* connection now.

    A dockerd that shuts down closes its listener first and then stops the containers, while
    the connections already open (aiodocker keeps them alive) are still answered: the
    container's wait ends with its exit code as if it had exited by itself. Only a fresh
    connection tells the two apart."""
    try:
        with anyio.fail_after(timeout):
            docker = _client()
            try:
                await docker.version()
            finally:
                await docker.close()
        return True
    except Exception:  # refused, reset, timed out, unreadable context: not answering
        return False


def _quiet_ssh_relay_loss(previous: Handler | None) -> Handler:
    """A loop exception handler without asyncio's "Task exception was never retrieved" for
    aiodocker's ssh relay tasks; everything else goes on to ``previous``.

    Written by hand for a gap in aiodocker (0.24): ``SSHConnector._relay_data`` catches
    ``ConnectionError``, but asyncssh's ``ConnectionLost`` is not one, so each relay of a
    dropped ssh connection ends with an unretrieved exception: a traceback in the logger's
    stderr. The relay closes its socket either way, and the follower that used it already
    says in one sentence that its stream broke and where it re-attached."""

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        task = context.get("future")
        coro = task.get_coro() if isinstance(task, asyncio.Task) else None
        if (type(context.get("exception")).__module__.startswith("asyncssh")
                and getattr(coro, "__qualname__", "") == "SSHConnector._relay_data"):
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    return handle
