"""Versions: every build (or pull) of a deployment's image is an immutable, labelled tag.

The public API other parts use (the health gate and rollback among them):

- :func:`current`, :func:`previous`, :func:`versions` read the store;
- :func:`record_outcome` sets a version's outcome (``deployed``, ``failed``,
  ``rolled back``, ...) and why;
- :func:`mark_deployed` makes a version the current one (with the measured downtime);
- :mod:`.naming` makes tags and labels, :mod:`.prune` bounds them on the engine,
  :mod:`.reference` checks a version named by the deploy webhook.
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
