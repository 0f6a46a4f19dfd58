"""Replay protection: the ``X-GitHub-Delivery`` ids of accepted signed requests.

A valid signature proves who made a request, not that it is new: a captured request could be
sent again. The ids are kept (the newest :data:`KEEP` of them) in a 0600 JSON file so a
restart does not forget them. The signature does not cover the id, so this only stops a
verbatim resend; what stops a replay with a new id is the signed commit (commits.py).
"""

from __future__ import annotations

import json
import logging
import re
from collections import OrderedDict
from pathlib import Path

from loon_supervisor.atomic import write_text_atomic

log = logging.getLogger("loon_supervisor.deploy")

KEEP = 1000
DELIVERY_RE = re.compile(r"^[A-Za-z0-9._-]{1,100}$")


class DeliveryLog:
    """Bounded, persisted set of delivery ids."""

    def __init__(self, path: Path, keep: int = KEEP) -> None:
        self.path = path
        self.keep = keep
        self._ids: OrderedDict[str, None] = OrderedDict()
        try:
            for item in json.loads(path.read_text(encoding="utf-8"))[-keep:]:
                if isinstance(item, str):
                    self._ids[item] = None
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as exc:
            log.warning("cannot read %s (%s); starting with no delivery ids", path,
                        type(exc).__name__)

    def __contains__(self, delivery: str) -> bool:
        return delivery in self._ids

    def remember(self, delivery: str) -> None:
        self._ids[delivery] = None
        while len(self._ids) > self.keep:
            self._ids.popitem(last=False)
        try:
            write_text_atomic(self.path, json.dumps(list(self._ids)), mode=0o600)
        except OSError as exc:
            log.warning("cannot write %s: %s", self.path, exc.strerror or exc)
