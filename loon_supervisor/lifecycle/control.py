"""One run's shared state, its signal task, and the plumbing from errors to exit codes.

Shared by the foreground ``up`` and the background logger: both own one :class:`Run`, and
one task that turns the first SIGINT/SIGTERM into a graceful stop and the second into a
kill.
"""

from __future__ import annotations

import signal
import sys
from dataclasses import dataclass, field

import anyio
from rich.console import Console

from loon_supervisor.errors import LoonError
from loon_supervisor.sinks.session import EventLog
from loon_supervisor.sinks.terminal import Printer, is_gone, silence


@dataclass
class Run:
    """Shared state of one up; only the supervisor and its signal task touch it."""

    say: Reporter
    stop_signal: int | None = None
    phase_scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    stop_requested: anyio.Event = field(default_factory=anyio.Event)
    force: anyio.Event = field(default_factory=anyio.Event)
    cid: str | None = None
    failure: str | None = None
    can_hand_over: bool = False
    handing_over: bool = False  # SIGHUP: the background logger takes over, nothing stops
    teardown_failed: bool = False  # an engine call in teardown gave up (see follow.bounded)


class Reporter:
    """Supervisor messages: always to out.log, to the terminal unless quiet."""

    def __init__(self, events: EventLog | None, console: Console | None) -> None:
        self.events = events
        self.console = console
        self.queue: Printer | None = None
        if console is not None:
            # rich exits the process on EPIPE; a closed terminal must only end its output.
            console.on_broken_pipe = lambda: self._terminal_gone()  # type: ignore[method-assign]

    def _terminal_gone(self) -> None:
        if self.console is not None:
            silence(self.console.file)
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


async def watch_signals(run: Run, hang_up: bool = False) -> None:
    """SIGINT/SIGTERM: stop, then force. With ``hang_up``, SIGHUP while following asks for
    a hand-over to the background logger (``run.can_hand_over``), else it stops too."""
    sigs = (signal.SIGINT, signal.SIGTERM) + ((signal.SIGHUP,) if hang_up else ())
    with anyio.open_signal_receiver(*sigs) as signals:
        async for signum in signals:
            if signum == signal.SIGHUP and run.can_hand_over and run.stop_signal is None:
                if not run.handing_over:
                    run.handing_over = True
                    run.say.log_only("the terminal hung up (SIGHUP): handing over to a "
                                     "background logger")
                    run.stop_requested.set()
                continue
            if run.stop_signal is None:
                run.stop_signal = signum
                run.say("stopping, press Ctrl+C again to force")
                run.phase_scope.cancel()
                run.stop_requested.set()
            else:
                run.say("forcing: killing the container now")
                run.force.set()


def signal_exit_code(signum: int) -> int:
    return 128 + signum


def operator_error(exc: BaseException) -> LoonError:
    """The LoonError inside ``exc`` (task groups wrap them); re-raise anything else."""
    if isinstance(exc, LoonError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        matched, rest = exc.split(LoonError)
        if matched is not None and rest is None:
            leaf: BaseException = matched
            while isinstance(leaf, BaseExceptionGroup):
                leaf = leaf.exceptions[0]
            assert isinstance(leaf, LoonError)
            return leaf
    raise exc


def run_sync(coro_fn, *args) -> int:  # type: ignore[no-untyped-def]
    """anyio.run on asyncio (aiodocker is asyncio-only)."""
    try:
        return anyio.run(coro_fn, *args, backend="asyncio")
    except KeyboardInterrupt:
        return signal_exit_code(signal.SIGINT)
    except (LoonError, BaseExceptionGroup) as exc:
        print(f"error: {operator_error(exc)}", file=sys.stderr)
        return operator_error(exc).exit_code
