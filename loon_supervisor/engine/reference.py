"""Image references as the engine reads them (``host:5000/repo:tag``)."""

from __future__ import annotations


def split_reference(ref: str) -> tuple[str, str]:
    """(repository, tag) of an image reference; ``latest`` when it names no tag. A digest
    (``@sha256:...``) is dropped: a version tag is made from the repository."""
    ref = ref.split("@", 1)[0]
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        repo, _, tag = ref.rpartition(":")
        return repo, tag
    return ref, "latest"
