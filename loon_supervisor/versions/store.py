"""The versions store: ``.build-files/versions.<deployment>.json``, one record per version
tag with its source revision, build time, deployment time and outcome, plus which version
is current. Every change is a locked read-modify-write replaced atomically, so the deploy
server, ``up`` and ``rollback`` can share it.

Outcomes: ``built`` (not deployed yet), ``deployed``, ``failed`` (it did not start or
failed its gate), ``rolled back`` (it was replaced by the previous version on failure).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from loon_supervisor.atomic import write_text_atomic
from loon_supervisor.paths import build_file
from loon_supervisor.versions.naming import iso, now_utc

BUILT = "built"
DEPLOYED = "deployed"
FAILED = "failed"
ROLLED_BACK = "rolled back"


@dataclass
class Version:
    """One immutable image tag of a deployment."""

    tag: str
    built: str  # ISO 8601 UTC, from the image's label
    revision: str | None = None  # the Loon source's commit (``-dirty`` when it had changes)
    source: str = "build"  # build | pull
    reference: str | None = None  # the registry reference a pulled version came from
    image_id: str | None = None
    deployed: str | None = None  # when it last became the current version
    outcome: str = BUILT
    reason: str | None = None  # why it failed or was rolled back
    downtime: float | None = None  # seconds without a serving Loon when it was swapped in
    # Image ids the build left besides the tagged image (other stages' last images); they
    # are the build cache of the next build, and removed when this version is pruned.
    intermediates: list[str] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Version:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class Store:
    current: str | None = None
    versions: list[Version] = field(default_factory=list)

    def find(self, tag: str) -> Version | None:
        return next((v for v in self.versions if v.tag == tag), None)


def store_path(name: str) -> Path:
    return build_file(f"versions.{name}.json")


def load(name: str) -> Store:
    """The store of deployment ``name`` (empty when none was written or it is unreadable:
    versions then still show from the engine's labels)."""
    try:
        data = json.loads(store_path(name).read_text(encoding="utf-8"))
        return Store(current=data.get("current"),
                     versions=[Version.from_json(v) for v in data.get("versions", [])])
    except (OSError, ValueError, TypeError, AttributeError):
        return Store()


@contextlib.contextmanager
def update(name: str) -> Iterator[Store]:
    """Change the store under its lock; written atomically when the block ends."""
    path = store_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        store = load(name)
        yield store
        store.versions.sort(key=lambda v: v.built)
        text = json.dumps({"current": store.current,
                           "versions": [asdict(v) for v in store.versions]}, indent=2)
        write_text_atomic(path, text + "\n")


def versions(name: str) -> list[Version]:
    """Every recorded version, oldest build first."""
    return sorted(load(name).versions, key=lambda v: v.built)


def current(name: str) -> Version | None:
    """The version the deployment runs (or last ran)."""
    store = load(name)
    return store.find(store.current) if store.current else None


def previous(name: str) -> Version | None:
    """The version to roll back to: the most recently deployed one, other than the current,
    whose deployment succeeded."""
    store = load(name)
    good = [v for v in store.versions
            if v.tag != store.current and v.outcome == DEPLOYED and v.deployed]
    return max(good, key=lambda v: v.deployed or "") if good else None


def record(name: str, version: Version) -> None:
    """Add a version (or replace the record of the same tag)."""
    with update(name) as store:
        store.versions = [v for v in store.versions if v.tag != version.tag] + [version]


def mark_deployed(name: str, tag: str, downtime: float | None = None) -> None:
    """``tag`` runs now: it becomes current, with its deployment time and downtime."""
    with update(name) as store:
        v = store.find(tag)
        if v is None:
            v = Version(tag=tag, built=iso(now_utc()))
            store.versions.append(v)
        v.deployed, v.outcome, v.reason, v.downtime = iso(now_utc()), DEPLOYED, None, downtime
        store.current = tag


def record_outcome(name: str, tag: str, outcome: str, reason: str | None = None) -> None:
    """Set the outcome of version ``tag`` (``deployed``, ``failed``, ``rolled back``, ...)
    and why; unknown tags are ignored (a version pruned meanwhile)."""
    with update(name) as store:
        v = store.find(tag)
        if v is not None:
            v.outcome, v.reason = outcome, reason


def set_current(name: str, tag: str | None) -> None:
    """Which version runs, without touching its outcome (a rollback's target)."""
    with update(name) as store:
        store.current = tag


def forget(name: str, tags: set[str]) -> None:
    """Drop pruned versions from the store."""
    with update(name) as store:
        store.versions = [v for v in store.versions if v.tag not in tags]
        if store.current in tags:
            store.current = None
