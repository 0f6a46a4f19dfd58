"""``loon versions``: the deployment's versions (image tags), newest last, the current one
marked; what the engine holds, with what the versions store recorded about each."""

from __future__ import annotations

from dataclasses import dataclass

from loon_supervisor.engine.client import open_engine
from loon_supervisor.lifecycle.identity import Identity
from loon_supervisor.paths import project_root
from loon_supervisor.versions import store
from loon_supervisor.versions.naming import (
    BUILT_LABEL,
    PROJECT_LABEL,
    REFERENCE_LABEL,
    REVISION_LABEL,
    project_id,
)


async def list_versions(who: Identity) -> list[store.Version]:
    """The versions the engine holds for this deployment, oldest first, each with its
    stored record (deployed, outcome) where there is one."""
    saved = store.load(who.name)
    async with open_engine() as engine:
        images = await engine.images_labelled(PROJECT_LABEL,
                                            project_id(project_root(), who.name))
    out: list[store.Version] = []
    for image in images:
        labels = image.labels
        for ref in image.repo_tags:
            if ref in (who.image, "<none>:<none>"):
                continue
            known = saved.find(ref)
            out.append(known or store.Version(
                tag=ref, built=labels.get(BUILT_LABEL, ""),
                revision=labels.get(REVISION_LABEL) or None,
                source="pull" if labels.get(REFERENCE_LABEL) else "build",
                reference=labels.get(REFERENCE_LABEL) or None, image_id=image.id))
    return sorted(out, key=lambda v: v.built)


def _row(v: store.Version, current: str | None) -> tuple[str, ...]:
    revision = (v.revision or "-")[:12] + ("-dirty" if (v.revision or "").endswith("-dirty")
                                           else "")
    outcome = v.outcome + (f": {v.reason}" if v.reason else "")
    if v.downtime is not None:
        outcome += f" (downtime {v.downtime:.1f} s)"
    return ("*" if v.tag == current else " ", v.tag,
            revision if v.source == "build" else f"{revision} (pulled {v.reference})",
            v.built or "-", v.deployed or "-", outcome)


async def show_versions(who: Identity) -> int:
    found = await list_versions(who)
    if not found:
        print(f"no versions of deployment '{who.name}' on the engine yet (each `loon up` "
              "builds one)")
        return 0
    current = store.load(who.name).current
    rows = [(" ", "TAG", "REVISION", "BUILT", "DEPLOYED", "OUTCOME"),
            *(_row(v, current) for v in found)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(" ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    if current is not None:
        print("* the current version (imageTag points at it)")
    return 0


@dataclass(frozen=True)
class VersionsOptions:
    """``loon versions``: the deployment whose versions are listed."""

    identity: Identity


async def run(opts: VersionsOptions) -> int:
    return await show_versions(opts.identity)
