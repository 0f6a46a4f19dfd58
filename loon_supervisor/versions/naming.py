"""Version tags and labels: ``<imageTag>-<UTC build time>-<short git sha>``, labelled with
the source revision, the build time and the project, so pruning finds exactly this
project's images by label and never touches another project's."""

from __future__ import annotations

import hashlib
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from loon_supervisor.engine.reference import split_reference as split_reference  # re-exported

REVISION_LABEL = "org.loon.version.revision"
BUILT_LABEL = "org.loon.version.built"
PROJECT_LABEL = "org.loon.version.project"
# Where a pulled image came from (its registry reference).
REFERENCE_LABEL = "org.loon.version.reference"
TIME_FORMAT = "%Y%m%dT%H%M%SZ"
_MAX_TAG = 128  # the registry's limit on a tag's length
_TAG_OK = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def now_utc() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def stamp(when: datetime) -> str:
    """``20261204T150102Z``: sorts as text, valid inside an image tag."""
    return when.astimezone(UTC).strftime(TIME_FORMAT)


def iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def version_tag(image_tag: str, built: datetime, revision: str | None) -> str:
    """The immutable tag of one build of ``image_tag`` (``loon:latest`` ->
    ``loon:latest-20261204T150102Z-1a2b3c4``); the time makes it unique per second."""
    repo, tag = split_reference(image_tag)
    suffix = f"-{stamp(built)}" + (f"-{revision[:7]}" if revision else "")
    tag = tag[:_MAX_TAG - len(suffix)] + suffix
    assert _TAG_OK.match(tag), tag
    return f"{repo}:{tag}"


def project_id(project_root: Path, name: str) -> str:
    """The value of :data:`PROJECT_LABEL`: the deployment's name and a hash of the project
    directory, so two clones that both call their deployment ``loon`` stay apart."""
    digest = hashlib.sha256(str(project_root.resolve()).encode()).hexdigest()[:12]
    return f"{name}@{digest}"


def source_revision(source: Path | None) -> str | None:
    """The full commit id of the Loon source when it is a git checkout (``-dirty`` appended
    when it has uncommitted changes), else None. Reads git's own answer, so worktrees,
    packed refs and submodules work."""
    if source is None or not source.is_dir():
        return None
    try:
        head = subprocess.run(["git", "-C", str(source), "rev-parse", "--verify", "-q", "HEAD"],
                              capture_output=True, text=True, timeout=30)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(source), "status", "--porcelain",
                                "--untracked-files=no", "--", "."],
                               capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    sha = head.stdout.strip()
    return sha + ("-dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")


def version_labels(project: str, built: datetime, revision: str | None,
                   reference: str | None = None) -> dict[str, str]:
    """The labels every version image carries."""
    labels = {PROJECT_LABEL: project, BUILT_LABEL: iso(built),
              REVISION_LABEL: revision or ""}
    if reference:
        labels[REFERENCE_LABEL] = reference
    return labels
