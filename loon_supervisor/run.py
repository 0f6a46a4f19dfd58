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
from loon_supervisor.logs.session import EventLog


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


class Reporter:
    """Supervisor messages: always to out.log, to the terminal unless quiet."""

    def __init__(self, events: EventLog | None, console: Console | None) -> None:
        self.events = events
        self.console = console

    def __call__(self, text: str, *, terminal: bool = True) -> None:
        if self.events is not None:
            self.events.event(text)
        if terminal and self.console is not None:
            self.console.print(text, markup=False, highlight=False)

    def log_only(self, text: str) -> None:
        if self.events is not None:
            self.events.event(text)


async def watch_signals(run: Run) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
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
