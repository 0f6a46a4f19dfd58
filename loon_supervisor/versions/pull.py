"""A prebuilt image as a version (``deploymentSettings.image``): pull it with progress,
check the image contract, then give it this deployment's version tag and labels (a
one-line ``FROM <image>`` build that adds only labels), so it takes part in versions,
pruning and rollback exactly like a built one."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

from loon_supervisor.engine.base import Engine
from loon_supervisor.engine.images import BuildRequest, ImageContract
from loon_supervisor.sinks.reporter import Reporter
from loon_supervisor.spec.prepare import Prepared
from loon_supervisor.versions import store
from loon_supervisor.versions.naming import iso, version_labels

# The revision a prebuilt image may state (OCI annotation label, as Loon's CI can set it).
OCI_REVISION = "org.opencontainers.image.revision"


class PullProgress:
    """Bytes downloaded over all layers on a bar; one out.log line per finished layer."""

    def __init__(self, say: Reporter, reference: str, console: Console | None) -> None:
        self.say = say
        self.started = time.monotonic()
        self.layers: dict[str, tuple[int, int]] = {}
        self.progress = Progress(TextColumn(f"pulling {reference}"), BarColumn(),
                                 DownloadColumn(), TimeElapsedColumn(), console=console,
                                 transient=True) if console is not None else None
        self.task = self.progress.add_task("", total=None) if self.progress else None

    def __enter__(self) -> PullProgress:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def event(self, event: dict[str, Any]) -> None:
        status, layer = str(event.get("status", "")), str(event.get("id", ""))
        detail = event.get("progressDetail") or {}
        if status == "Downloading" and detail.get("total"):
            self.layers[layer] = (int(detail.get("current", 0)), int(detail["total"]))
        elif status in ("Download complete", "Pull complete", "Already exists") and layer:
            done = self.layers.get(layer)
            if done is not None:
                self.layers[layer] = (done[1], done[1])
            if status != "Download complete":
                self.say.log_only(f"pull: {layer}: {status}")
        elif status and not layer:
            self.say.log_only(f"pull: {status}")  # Digest, Status: Downloaded newer image
        if self.progress is not None and self.task is not None and self.layers:
            self.progress.update(self.task, completed=sum(c for c, _ in self.layers.values()),
                                 total=sum(t for _, t in self.layers.values()))


async def pull_version(engine: Engine, prepared: Prepared, say: Reporter,
                       console: Console | None, reference: str | None = None
                       ) -> ImageContract:
    """Pull ``reference`` (default ``deploymentSettings.image``), check its contract and
    make it a version of this deployment; its contract names the version tag."""
    from loon_supervisor.versions.build import deployment_project, unused_tag

    d = prepared.config.deploymentSettings
    ref = reference or d.image
    assert ref is not None
    say(f"pulling {ref}")
    with PullProgress(say, ref, console) as progress:
        await engine.pull(ref, progress.event)
    pulled = await engine.image_inspect(ref)
    assert pulled is not None
    await engine.read_contract(ref)  # the contract labels, before anything else
    revision = pulled.labels.get(OCI_REVISION) or None
    built, tag = await unused_tag(engine, d.imageTag, revision)
    with tempfile.TemporaryDirectory(prefix="loon-pull-") as ctx:
        req = BuildRequest(context=Path(ctx), tag=tag,
                           extra_files={"Dockerfile": f"FROM {ref}\n".encode()},
                           labels=version_labels(deployment_project(prepared), built,
                                                 revision, reference=ref))
        await engine.build(req, lambda line: say.log_only(f"build: {line}"), lambda _: None)
    say(f"pulled {ref} as version {tag} (image {pulled.id[7:19]})")
    contract = await engine.read_contract(tag)
    info = await engine.image_inspect(tag)
    store.record(d.containerName, store.Version(
        tag=tag, built=iso(built), revision=revision, source="pull", reference=ref,
        image_id=info.id if info else None))
    return contract
