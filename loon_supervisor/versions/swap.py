"""The downtime of a swap: from the moment the old version is asked to stop to the new one
running (a health gate, where there is one, ends it instead by calling :meth:`Swap.done`
once the new version passes)."""

from __future__ import annotations

import time
from collections.abc import Callable

from loon_supervisor.engine.base import Engine


class Swap:
    """One replacement of a running version; nothing to measure when none was running."""

    def __init__(self) -> None:
        self.stopped_at: float | None = None
        self.old_image: str | None = None
        self.downtime: float | None = None

    async def start(self, engine: Engine, name: str) -> None:
        """Call right before the old version is stopped."""
        running = [c for c in await engine.list_ours(name) if c.running]
        if running:
            self.old_image = running[0].image
            self.stopped_at = time.monotonic()

    def done(self, say: Callable[[str], None], until: str = "the new one running"
             ) -> float | None:
        """Seconds since :meth:`start` (said on the terminal and in out.log), once."""
        if self.stopped_at is None or self.downtime is not None:
            return self.downtime
        self.downtime = round(time.monotonic() - self.stopped_at, 3)
        say(f"downtime: {self.downtime:.2f} s (the old container's stop to {until})")
        return self.downtime
