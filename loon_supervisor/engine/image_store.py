"""The engine's image store as versions need it: tag, list by label, delete, find the
dangling ones. Every call maps engine failures to one sentence."""

from __future__ import annotations

import re

import aiodocker

from loon_supervisor.engine.client import map_engine_errors
from loon_supervisor.engine.records import ImageInfo
from loon_supervisor.engine.reference import split_reference
from loon_supervisor.errors import EngineError

# The classic builder's "--->  <id>" lines name each step's resulting image.
_STEP_IMAGE = re.compile(r"^\s*---> ([0-9a-f]{12,64})\s*$")


def step_image(line: str) -> str | None:
    """The image id a build output line announces, if it announces one."""
    m = _STEP_IMAGE.match(line)
    return m.group(1) if m else None


async def tag(docker: aiodocker.Docker, image: str, ref: str) -> None:
    """Point ``ref`` (``repo:tag``) at ``image`` (an id or another reference)."""
    repo, name = split_reference(ref)
    with map_engine_errors(f"tagging {image} as {ref}"):
        await docker.images.tag(image, repo, tag=name)


async def inspect(docker: aiodocker.Docker, image: str) -> ImageInfo | None:
    """The image's inspect data, or None when the engine has no such image."""
    try:
        return ImageInfo.from_docker(await docker.images.inspect(image))
    except aiodocker.DockerError as exc:
        if exc.status == 404:
            return None
        with map_engine_errors(f"inspecting image {image}"):
            raise


async def labelled(docker: aiodocker.Docker, label: str, value: str) -> list[ImageInfo]:
    """Images whose ``label`` is exactly ``value``."""
    with map_engine_errors("listing images"):
        found = await docker.images.list(filters={"label": [f"{label}={value}"]})
    return [ImageInfo.from_docker(i) for i in found]


async def dangling_ids(docker: aiodocker.Docker) -> set[str]:
    """Ids (``sha256:...``) of untagged images no other image builds on."""
    with map_engine_errors("listing dangling images"):
        return {i["Id"] for i in await docker.images.list(filters={"dangling": ["true"]})}


async def delete(docker: aiodocker.Docker, ref: str) -> str | None:
    """Remove a tag (and the image when it was the last one); None when done or already
    gone, else the engine's reason (an image a container still uses is kept)."""
    try:
        await docker.images.delete(ref)
        return None
    except aiodocker.DockerError as exc:
        if exc.status == 404:
            return None
        if exc.status in (409, 500):
            return str(exc.message)
        raise EngineError(f"the Docker engine refused removing image {ref}: "
                          f"{exc.message}") from None
