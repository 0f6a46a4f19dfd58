"""Pulling an image with progress: ``POST /images/create`` with the registry credentials
of the docker CLI's config, each progress event handed to a callback."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import aiodocker
from aiohttp import ClientTimeout

from loon_supervisor.engine import raw as rawapi
from loon_supervisor.engine.client import map_engine_errors
from loon_supervisor.engine.reference import split_reference
from loon_supervisor.engine.registry_auth import credentials, registry_of
from loon_supervisor.errors import EngineError


class PullFailed(EngineError):
    """The registry or the engine refused the pull (the reason is the engine's)."""


async def pull(docker: aiodocker.Docker, reference: str,
               on_event: Callable[[dict[str, Any]], None]) -> None:
    """Pull ``reference``; every progress event (``status``, ``id``, ``progressDetail``)
    goes to ``on_event``. Credentials come from the docker CLI's config when it has some
    for the registry; they are sent in the header only, never logged.

    :raises PullFailed: with the registry's reason (unknown image, denied, unreachable).
    """
    repo, tag = split_reference(reference)
    headers: dict[str, str] = {}
    creds = credentials(reference)
    if creds is not None:
        headers["X-Registry-Auth"] = base64.urlsafe_b64encode(
            json.dumps(creds).encode()).decode()
    params = {"fromImage": repo, "tag": tag}
    with map_engine_errors(f"pulling {reference}"):
        async with rawapi.query(docker, "images/create", method="POST", params=params,
                                headers=headers, timeout=ClientTimeout(total=None,
                                                                       sock_read=600)
                                ) as response:
            async for raw in response.content:
                if not raw.strip():
                    continue
                try:
                    event = json.loads(raw)
                except ValueError:
                    continue
                if "error" in event:
                    where = registry_of(reference)
                    hint = ("" if creds is not None else
                            f" (no credentials for {where} in the docker config: "
                            f"`docker login {where}` if it needs them)")
                    raise PullFailed(f"pulling {reference} failed: "
                                     f"{str(event['error']).strip()}{hint}")
                on_event(event)
