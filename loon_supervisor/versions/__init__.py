"""Versions: every build (or pull) of a deployment's image is an immutable, labelled tag.

The public API other parts use (the health gate and rollback among them):

- :func:`current`, :func:`previous`, :func:`versions` read the store;
- :func:`record_outcome` sets a version's outcome (``deployed``, ``failed``,
  ``rolled back``, ...) and why;
- :func:`mark_deployed` makes a version the current one (with the measured downtime);
  :func:`set_current` only moves the mark (a rollback's target);
- :func:`loon_supervisor.versions.build.build_version` builds a version (or pulls one,
  :mod:`.pull`, with ``deploymentSettings.image``) without touching ``imageTag``;
  :func:`~loon_supervisor.versions.build.promote` makes a running one current: ``imageTag``
  moves to it and old versions are pruned (:mod:`.prune`, by label, ``keepVersions``);
- :class:`~loon_supervisor.versions.swap.Swap` measures a swap's downtime;
- :mod:`.naming` makes tags and labels; :mod:`.reference` checks a version named by the
  deploy webhook.

The store is ``.build-files/versions.<deployment>.json`` (:mod:`.store`).
"""

from loon_supervisor.versions.store import (
    BUILT,
    DEPLOYED,
    FAILED,
    ROLLED_BACK,
    Version,
    current,
    mark_deployed,
    previous,
    record,
    record_outcome,
    set_current,
    versions,
)

__all__ = ["BUILT", "DEPLOYED", "FAILED", "ROLLED_BACK", "Version", "current",
           "mark_deployed", "previous", "record", "record_outcome", "set_current", "versions"]
