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
from loon_supervisor.lifecycle.run import Owner, Run
from loon_supervisor.lifecycle.state import DeploymentLock, DeploymentState, lock_holder
from loon_supervisor.lifecycle.supervised import watch_follower_signals
from loon_supervisor.sinks.session import Session


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
    with Session(state.session, None) as session:
        say = session.say
        say(f"engine: {resolve_endpoint().describe()}")
        control = Control()
        if state.swarm:
            try:
                return await _follow_swarm(state, session, control)
            finally:
                lock.release()
        try:
            async with open_engine() as engine, anyio.create_task_group() as tg:
                tg.start_soon(watch_follower_signals, control, say, name)
                run = Run.from_state(engine, state, session, control, owner=Owner.LOGGER,
                                     lock=lock)
                run.adopt(state.cid)

                def attached() -> None:
                    statefile.update(name, state.cid, logger_pid=os.getpid(), attached=True,
                                     positions=run.dep.positions())
                    say(f"background logger {os.getpid()} attached to every stream")

                await run.follow(on_attached=attached)
                run.report_failure()
                outcome = await run.teardown()
                tg.cancel_scope.cancel()
            return 1 if outcome.teardown_failed else 0
        finally:
            lock.release()


async def _follow_swarm(state: DeploymentState, session: Session, control: Control) -> int:
    """A swarm deployment: every task's file continues at its size (swarm/tasklogs.py)."""
    from loon_supervisor.swarm.up import follow_swarm

    name, say = state.name, session.say

    def attached() -> None:
        statefile.update(name, state.cid, logger_pid=os.getpid(), attached=True,
                         foreground_pid=None, down_requested=False)
        say(f"background logger {os.getpid()} attached to every task")

    async with open_engine() as engine, anyio.create_task_group() as tg:
        tg.start_soon(watch_follower_signals, control, say, name)
        outcome = await follow_swarm(engine, state, session, control, attached)
        tg.cancel_scope.cancel()
    if outcome.removed:
        statefile.forget(name, state.cid)
    return 1 if outcome.teardown_failed else 0


@dataclass(frozen=True)
class LoggerOptions:
    """The background logger (``loon _logger``): the deployment it follows."""

    name: str


async def run(opts: LoggerOptions) -> int:
    return await logger_main(opts.name)
