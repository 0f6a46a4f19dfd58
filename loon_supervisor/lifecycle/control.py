"""The small interface between signals and the process that owns a deployment.

A :class:`Control` is all a signal can do to a run: cancel the phase in progress (build,
start), ask for a graceful stop, force a kill, or (SIGHUP while following) ask for a
hand-over to a background logger. It carries the requests only; :func:`watch_signals` is
the one task that turns SIGINT/SIGTERM/SIGHUP into them and says so in the session's event
channel. The :class:`~.run.Run` and its :class:`~.deployment.Deployment` read them.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field

import anyio

from loon_supervisor.sinks.reporter import Reporter


@dataclass
class Control:
    """Requests from outside: set by :func:`watch_signals` (or a test), read by the owner."""

    stop_signal: int | None = None
    phase_scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    stop_requested: anyio.Event = field(default_factory=anyio.Event)
    force: anyio.Event = field(default_factory=anyio.Event)
    can_hand_over: bool = False  # a foreground follow may pass to a background logger
    handing_over: bool = False  # SIGHUP: the background logger takes over, nothing stops

    def request_stop(self, signum: int) -> None:
        """First signal: cancel the phase in progress, or stop the container gracefully."""
        self.stop_signal = signum
        self.phase_scope.cancel()
        self.stop_requested.set()

    def request_hand_over(self) -> None:
        """The streams close at their exact positions; the container runs on."""
        self.handing_over = True
        self.stop_requested.set()

    def request_kill(self) -> None:
        self.force.set()


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def announce_stop(say: Reporter, signum: int) -> None:
    """What a first stop signal is told as: why in out.log, what next on the terminal."""
    say.log_only(f"received {signal_name(signum)}")  # why a run stopped (shutdown, Ctrl+C)
    say("stopping, press Ctrl+C again to force")


def announce_kill(say: Reporter) -> None:
    say("forcing: killing the container now")


async def watch_signals(control: Control, say: Reporter, hang_up: bool = False) -> None:
    """SIGINT/SIGTERM: stop, then force. With ``hang_up``, SIGHUP while following asks for
    a hand-over to the background logger (``control.can_hand_over``), else it stops too."""
    sigs = (signal.SIGINT, signal.SIGTERM) + ((signal.SIGHUP,) if hang_up else ())
    with anyio.open_signal_receiver(*sigs) as signals:
        async for signum in signals:
            if signum == signal.SIGHUP and control.can_hand_over and control.stop_signal is None:
                if not control.handing_over:
                    say.log_only("the terminal hung up (SIGHUP): handing over to a "
                                 "background logger")
                    control.request_hand_over()
                continue
            if control.stop_signal is None:
                announce_stop(say, signum)
                control.request_stop(signum)
            else:
                announce_kill(say)
                control.request_kill()
