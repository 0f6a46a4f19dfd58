"""Recreate like docker compose: a container of this deployment that is not running (after a
crash, a reboot or an engine restart) is removed, so ``up`` starts a fresh one without an
operator's ``-D`` first. A running one is left alone (``up`` refuses with its hint).

Removal goes through :func:`loon_supervisor.lifecycle.run.remove_deployment` (``up`` holds the
deployment's lock), which first appends the bytes the last run's follower missed to that
run's session files when the state file still names the container.
"""

from __future__ import annotations

from loon_supervisor.engine.base import ContainerEngine
from loon_supervisor.errors import EngineError
from loon_supervisor.lifecycle import state as statefile
from loon_supervisor.lifecycle.run import remove_deployment
from loon_supervisor.sinks.reporter import Reporter

# "restarting": the engine's restart policy starts it again and again (it keeps exiting
# while nobody follows it).
NOT_RUNNING = ("exited", "created", "dead", "restarting")


async def remove_stopped(engine: ContainerEngine, name: str, say: Reporter) -> None:
    """Remove this deployment's stopped container, saying so in one line (terminal and
    out.log); a running one is left for ``create_and_start`` to refuse."""
    found = await engine.list_ours(name)
    stopped = [c for c in found if c.state in NOT_RUNNING]
    if not stopped or len(stopped) != len(found):
        return
    c = stopped[0]
    state = statefile.load(name)
    known = state is not None and state.cid == c.id
    say(f"recreating container {name}: the previous one ({c.id[:12]}) was "
        f"{c.status or c.state}; removing it"
        + (f" after collecting its missing log bytes into {state.session}"
           if known and state is not None else ""))
    code, _ = await remove_deployment(engine, name, Reporter(None, None))
    if code != 0:
        raise EngineError(f"could not remove the stopped container of deployment '{name}'; "
                          "remove it with `python3 build.py -D` (or `loon down`)")
