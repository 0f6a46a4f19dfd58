"""The background logger's body (``loon _logger NAME``, hidden): adopt the running
container from the state file and follow it until ``down`` (SIGTERM) or its end. Any other
SIGTERM (a shutdown, a ``kill``) detaches: the container runs on and the state keeps the
positions for the next follower (:mod:`loon_supervisor.lifecycle.supervised`)."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import anyio

from loon_supervisor.engine.client import open_engine
from loon_supervisor.engine.endpoint import resolve_endpoint
from loon_supervisor.lifecycle import state as statefile
from loon_supervisor.lifecycle.control import Control
from loon_supervisor.lifecycle.crashloop import CrashLoopPolicy
from loon_supervisor.lifecycle.deployment import Deployment, Phase
from loon_supervisor.lifecycle.state import DeploymentLock, lock_holder
from loon_supervisor.lifecycle.supervised import watch_follower_signals
from loon_supervisor.paths import build_files_dir
from loon_supervisor.sinks import retention
from loon_supervisor.sinks.reporter import Reporter
from loon_supervisor.sinks.session import EventLog
from loon_supervisor.streams.cursor import Position
from loon_supervisor.streams.sources.choice import Sources, forget_host_dir, host_dir_of, recorded


async def logger_main(name: str) -> int:
    lock = DeploymentLock.inherited(name) or DeploymentLock.acquire(name)
    if lock is None:
        print(f"deployment {name} is already followed by pid {lock_holder(name)}",
              file=sys.stderr)
        return 1
    state = statefile.load(name)
    if state is None:
        print(f"no state for deployment {name}", file=sys.stderr)
        lock.release()
        return 1
    events = EventLog(state.session / "out.log")
    say = Reporter(events, None)
    say(f"engine: {resolve_endpoint().describe()}")
    control = Control(say=say)
    cid = state.cid

    prune = retention.StagingPruner(host_dir_of(state.log_source, build_files_dir(), name),
                                    retention.recorded_limits(state.log_max_bytes))

    def save(positions: dict[str, Position]) -> None:
        statefile.update(name, cid, positions=positions)
        prune(positions)

    try:
        async with open_engine() as engine, anyio.create_task_group() as tg:
            tg.start_soon(watch_follower_signals, control, name)
            policy = CrashLoopPolicy(*state.crash_loop) if state.crash_loop else None
            dep = Deployment(engine, name, state.contract(), state.session, control,
                             stop_timeout=state.stop_timeout, crash_policy=policy,
                             source=Sources(recorded(state.log_source, build_files_dir(),
                                                     name), engine, state.log_dir))
            dep.adopt(cid)

            def attached() -> None:
                statefile.update(name, cid, logger_pid=os.getpid(), attached=True,
                                 positions=dep.positions())
                say(f"background logger {os.getpid()} attached to every stream")

            await dep.follow(saved=state.positions, on_attached=attached, on_positions=save)
            dep.report_failure()
            detached = dep.phase is Phase.HANDED_OVER
            if detached:
                say(f"background logger {os.getpid()} detached; the container runs on "
                    "(`loon attach` or `loon service` continues from here)")
            elif await dep.remove():
                reason = dep.failure or ("stopped on request" if control.stop_signal
                                         else "stream ended")
                say(f"background logger exiting: {reason}; container removed")
                forget_host_dir(build_files_dir(), name, say)
            tg.cancel_scope.cancel()
        if not detached:
            statefile.forget(name, cid)  # never a newer deployment's
        return 1 if dep.teardown_failed else 0
    finally:
        events.close()
        lock.release()


@dataclass(frozen=True)
class LoggerOptions:
    """The background logger (``loon _logger``): the deployment it follows."""

    name: str


async def run(opts: LoggerOptions) -> int:
    return await logger_main(opts.name)
