"""Building the image and reading the labels that form the image contract."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiodocker
import anyio

from loon_supervisor.engine import raw as rawapi
from loon_supervisor.engine.build_context import iterate, produce_context
from loon_supervisor.engine.client import map_engine_errors
from loon_supervisor.errors import BuildFailed, ImageContractError

SERVICES_LABEL = "org.loon.services"
LOG_DIR_LABEL = "org.loon.log-dir"
STATUS_LABEL = "org.loon.status-command"
RUN_SERVICES_LABEL = "org.loon.run-services-env"
# How many rotated generations (<svc>.log.1 ... .N) a service's log keeps (supervisord's
# logfile_backups): the followers search that many for a file they fell behind on.
LOG_BACKUPS_LABEL = "org.loon.log-backups"
DEFAULT_LOG_BACKUPS = 10
DEFAULT_LOG_DIR = "/var/log/loon"


@dataclass(frozen=True)
class ImageContract:
    image: str
    services: tuple[str, ...]
    log_dir: str
    status_command: str | None
    # org.loon.run-services-env: the variable the entrypoint reads to run only some services
    run_services_env: str | None = None
    log_backups: int = DEFAULT_LOG_BACKUPS


def parse_status(output: bytes, services: tuple[str, ...]) -> list[tuple[str, str, str]]:
    """The status command's lines about ``services``: (name, STATE, the whole line), as
    ``supervisorctl status`` prints them (``name STATE ...``)."""
    found = []
    for line in output.decode(errors="replace").splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in services:
            found.append((parts[0], parts[1], line))
    return found


@dataclass(frozen=True)
class BuildRequest:
    context: Path
    tag: str
    network_mode: str = "default"
    build_args: dict[str, str] | None = None
    extra_files: dict[str, Path | bytes | None] | None = None
    # Set on the final image (the classic builder adds them as a last LABEL step).
    labels: dict[str, str] | None = None


async def build_image(docker: aiodocker.Docker, req: BuildRequest,
                      on_line: Callable[[str], None],
                      on_step: Callable[[str], None]) -> str:
    """Stream the context to ``POST /build`` and its output to the callbacks.

    aiodocker's images.build() cannot set ``networkmode``, so this is the one place that
    speaks the build endpoint directly. Cancelling this coroutine closes the connection,
    which makes the engine abort the build (forcerm removes its intermediate containers).
    """
    params: dict[str, str] = {"t": req.tag, "rm": "1", "forcerm": "1"}
    if req.network_mode != "default":
        params["networkmode"] = req.network_mode
    if req.build_args:
        params["buildargs"] = json.dumps(req.build_args)
    if req.labels:
        params["labels"] = json.dumps(req.labels)
    step = ""
    send, receive = anyio.create_memory_object_stream[bytes](4)
    async with anyio.create_task_group() as tg:
        tg.start_soon(produce_context, req.context, req.extra_files or {}, send)
        with map_engine_errors("building the image"):
            async with rawapi.query_chunked_post(docker,
                "build", params=params, data=iterate(receive),
                headers={"Content-Type": "application/x-tar"}, timeout=None,
            ) as response:
                async for raw in response.content:
                    if not raw.strip():
                        continue
                    try:
                        event = json.loads(raw)
                    except ValueError:
                        on_line(raw.decode(errors="replace").rstrip("\n"))
                        continue
                    if "error" in event:
                        raise BuildFailed(step, str(event["error"]).strip())
                    text = event.get("stream")
                    if isinstance(text, str):
                        for line in text.splitlines():
                            if line.startswith("Step "):
                                step = line.strip()
                                on_step(step)
                            on_line(line)
                    elif "status" in event:
                        on_line(str(event["status"]))
        tg.cancel_scope.cancel()
    return req.tag


async def read_contract(docker: aiodocker.Docker, image: str) -> ImageContract:
    with map_engine_errors(f"inspecting image {image}"):
        info = await docker.images.inspect(image)
    labels = (info.get("Config") or {}).get("Labels") or {}
    raw = labels.get(SERVICES_LABEL)
    if not raw:
        raise ImageContractError(
            f"image {image} has no '{SERVICES_LABEL}' label — add "
            f"LABEL {SERVICES_LABEL}=\"svc1,svc2\" to its Dockerfile"
        )
    services = tuple(s.strip() for s in raw.split(",") if s.strip())
    bad = [s for s in services if "/" in s or s.startswith(".")]
    if bad:
        raise ImageContractError(f"image {image}: service names {bad} in '{SERVICES_LABEL}' "
                                 "are not plain names — use letters, digits, - and _")
    raw_backups = labels.get(LOG_BACKUPS_LABEL) or str(DEFAULT_LOG_BACKUPS)
    if not raw_backups.isdigit() or not 0 <= int(raw_backups) <= 1000:
        raise ImageContractError(f"image {image}: '{LOG_BACKUPS_LABEL}' is {raw_backups!r}, "
                                 "not a number of rotated log files from 0 to 1000 — set it "
                                 "to the services' logfile_backups")
    return ImageContract(
        image=image,
        log_backups=int(raw_backups),
        services=services,
        log_dir=labels.get(LOG_DIR_LABEL) or DEFAULT_LOG_DIR,
        status_command=labels.get(STATUS_LABEL) or None,
        run_services_env=labels.get(RUN_SERVICES_LABEL) or None,
    )
