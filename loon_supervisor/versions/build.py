"""Making a version: build the image under its immutable version tag, with the version
labels, and record it in the store. ``imageTag`` is not touched here: it moves to the new
version only once that version runs (:func:`promote`), so a failed build or start leaves
it on what runs."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import anyio
from rich.console import Console

from loon_supervisor.engine import image_store
from loon_supervisor.engine.base import Engine
from loon_supervisor.engine.images import ImageContract
from loon_supervisor.errors import LoonError
from loon_supervisor.paths import project_root
from loon_supervisor.sinks.build_progress import BuildProgress
from loon_supervisor.sinks.reporter import Reporter
from loon_supervisor.spec.loon import build_request
from loon_supervisor.spec.prepare import Prepared
from loon_supervisor.versions import store
from loon_supervisor.versions.naming import (
    iso,
    now_utc,
    project_id,
    source_revision,
    version_labels,
    version_tag,
)
from loon_supervisor.versions.prune import prune


def deployment_project(prepared: Prepared) -> str:
    """This deployment's :data:`~.naming.PROJECT_LABEL` value."""
    return project_id(project_root(), prepared.config.deploymentSettings.containerName)


def loon_source(prepared: Prepared) -> Path | None:
    src = prepared.config.deploymentSettings.loonSourceLocation
    if not src:
        return None
    path = Path(src)
    return path if path.is_absolute() else prepared.config_path.resolve().parent / path


async def build_version(engine: Engine, prepared: Prepared, say: Reporter,
                        verbose: bool, console: Console | None, progress: bool = True
                        ) -> ImageContract:
    """Build a new version (its contract names the version tag) and record it as built;
    with ``deploymentSettings.image``, pull that instead (:mod:`.pull`). ``progress``
    False: no bar; the steps are said as plain lines instead (``build.py -s``)."""
    d = prepared.config.deploymentSettings
    bar = None if verbose or not progress else console
    if d.image:
        from loon_supervisor.versions.pull import pull_version

        return await pull_version(engine, prepared, say, bar)
    req = await build_request(prepared, say)
    revision = await anyio.to_thread.run_sync(source_revision, loon_source(prepared))
    built, tag = await unused_tag(engine, d.imageTag, revision)
    req = replace(req, tag=tag, labels=version_labels(deployment_project(prepared), built,
                                                       revision))
    say(f"building version {tag} from {req.context}"
        + (f" (Loon source at {revision[:12]})" if revision else ""))
    steps: list[str] = []

    def on_line(line: str) -> None:
        say.log_only(f"build: {line}")
        if (image := image_store.step_image(line)) is not None:
            steps.append(image)
        if verbose and console is not None:
            console.print(line, markup=False, highlight=False)

    with BuildProgress(say, tag, bar, plain=not progress and not verbose) as shown:
        await engine.build(req, on_line, shown.step)
        shown.done()
    say(f"built {tag}")
    contract = await engine.read_contract(tag)
    info = await engine.image_inspect(tag)
    store.record(d.containerName, store.Version(
        tag=tag, built=iso(built), revision=revision, source="build",
        image_id=info.id if info else None, intermediates=sorted(set(steps))))
    return contract


async def unused_tag(engine: Engine, image_tag: str, revision: str | None
                      ) -> tuple[datetime, str]:
    """A version tag no image has yet: two builds within one second would otherwise share
    one, and the first would lose its tag (a quick rebuild of the same source)."""
    while True:
        built = now_utc()
        tag = version_tag(image_tag, built, revision)
        if await engine.image_inspect(tag) is None:
            return built, tag
        await anyio.sleep(1.05 - (time.time() % 1))


async def promote(engine: Engine, prepared: Prepared, tag: str, say: Reporter,
                  downtime: float | None = None) -> None:
    """``tag`` runs now: point ``imageTag`` at it, record it as deployed (current), and
    prune old versions beyond ``keepVersions``. The container already runs: an engine that
    refuses the tag or a removal is said, never a failed deploy."""
    d = prepared.config.deploymentSettings
    store.mark_deployed(d.containerName, tag, downtime)
    try:
        if tag != d.imageTag:
            await engine.image_tag(tag, d.imageTag)
        await prune(engine, d.containerName, deployment_project(prepared),
                    d.keepVersions, d.imageTag, say)
    except LoonError as exc:
        say(f"version {tag} runs, but tidying the versions failed: {exc}; `loon versions` "
            "shows what is left")
