"""The supervisor's own messages: always to out.log, to the terminal unless quiet."""

from __future__ import annotations

from rich.console import Console

from loon_supervisor.sinks.events import EventLog
from loon_supervisor.sinks.terminal import Printer, is_gone, silence


class Reporter:
    """Says one event: ``say(text)`` to out.log and the terminal, ``say.log_only(text)``
    to out.log only."""

    def __init__(self, events: EventLog | None, console: Console | None) -> None:
        self.events = events
        self.console = console
        self.queue: Printer | None = None
        if console is not None:
            # rich exits the process on EPIPE; a closed terminal must only end its output.
            console.on_broken_pipe = lambda: self._terminal_gone()  # type: ignore[method-assign]

    def _terminal_gone(self) -> None:
        if self.console is not None:
            silence(self.console.file)  # type: ignore[arg-type]
            self.console.quiet = True

    def __call__(self, text: str, *, terminal: bool = True) -> None:
        self.log_only(text)
        if terminal:
            self.terminal(text)

    def terminal(self, text: str) -> None:
        """To the terminal only; a closed one (EPIPE, hang-up) just ends terminal output.
        While a :class:`Printer` pumps (the follow phase), messages queue behind its lines
        so a paused terminal never blocks the event loop."""
        if self.console is None:
            return
        if self.queue is not None and self.queue.pumping:
            self.queue.system(text)
            return
        try:
            self.console.print(text, markup=False, highlight=False)
        except OSError as exc:
            if not is_gone(exc):
                raise
            self._terminal_gone()

    def log_only(self, text: str) -> None:
        if self.events is not None:
            failed = self.events.failed
            self.events.event(text)
            if failed is None and self.events.failed is not None:
                self.terminal(f"{self.events.failed}; supervisor events go to the terminal "
                              "only from now on")
