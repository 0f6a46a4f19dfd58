"""Bound a deployment's versions to ``deploymentSettings.keepVersions``.

Only images carrying this project's :data:`~.naming.PROJECT_LABEL` value are looked at,
so another project's images (or another deployment's) are never touched. The current
version is always kept. With a pruned version go the dangling images its build left (the
other stages' last images, recorded in the store), unless a kept version's build made them
too: those are the next build's cache.
"""

from __future__ import annotations

from collections.abc import Callable

from loon_supervisor.engine.base import Engine
from loon_supervisor.engine.records import ImageInfo
from loon_supervisor.versions import store
from loon_supervisor.versions.naming import BUILT_LABEL, PROJECT_LABEL, REFERENCE_LABEL


def _version_tags(image: ImageInfo, keep_ref: str) -> list[str]:
    return [t for t in image.repo_tags if t != keep_ref and t != "<none>:<none>"]


async def prune(engine: Engine, name: str, project: str, keep: int,
                image_tag: str, say: Callable[[str], None]) -> list[str]:
    """Remove all but the ``keep`` newest versions (the current one always stays); the
    tags removed. ``image_tag`` (what runs) is never removed itself."""
    images = await engine.images_labelled(PROJECT_LABEL, project)
    saved = store.load(name)
    current = saved.current
    images.sort(key=lambda i: _label(i, BUILT_LABEL), reverse=True)
    running = [i for i in images if _runs(i, current, image_tag)]
    kept = running[:1]
    for image in images:
        if len(kept) >= keep:
            break
        if image not in kept:
            kept.append(image)
    drop = [i for i in images if i not in kept]
    removed: list[str] = []
    for image in drop:
        for ref in _version_tags(image, image_tag):
            why = await engine.image_delete(ref)
            if why is None:
                removed.append(ref)
            else:
                say(f"kept version {ref}: {why}")
    kept_refs = {_label(i, REFERENCE_LABEL) for i in kept}
    for ref in {_label(i, REFERENCE_LABEL) for i in drop} - kept_refs - {""}:
        if ref != image_tag:  # the pulled reference, once no kept version comes from it
            await engine.image_delete(ref)
    if removed:
        say(f"pruned {len(removed)} old version(s) (keepVersions {keep}): {', '.join(removed)}")
    await _prune_intermediates(engine, saved, set(removed))
    if removed:
        store.forget(name, set(removed))
    return removed


def _label(image: ImageInfo, key: str) -> str:
    return image.labels.get(key) or ""


def _runs(image: ImageInfo, current: str | None, image_tag: str) -> bool:
    """Is this the current version (the store says so, or ``imageTag`` points at it)?"""
    tags = image.repo_tags
    return (current is not None and current in tags) or image_tag in tags


async def _prune_intermediates(engine: Engine, saved: store.Store,
                               removed: set[str]) -> None:
    gone = {i for v in saved.versions if v.tag in removed for i in v.intermediates}
    kept = {i for v in saved.versions if v.tag not in removed for i in v.intermediates}
    candidates = gone - kept
    if not candidates:
        return
    dangling = await engine.dangling_image_ids()
    for short in sorted(candidates):
        for full in dangling:
            if full.removeprefix("sha256:").startswith(short):
                await engine.image_delete(full)
