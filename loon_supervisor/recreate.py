"""Recreate like docker compose: a container of this deployment that is not running (after a
crash, a reboot or an engine restart) is removed, so ``up`` starts a fresh one without an
operator's ``-D`` first. A running one is left alone (``up`` refuses with its hint).

Before removal, the bytes its services wrote after the last run's logger stopped copying
are appended to that run's session files, so the session stays complete.
"""

from __future__ import annotations

from pathlib import Path

import aiodocker

from loon_supervisor.engine import containers, exec_streams
from loon_supervisor.errors import EngineError
from loon_supervisor.logs.session import EventLog
from loon_supervisor.run import Reporter
from loon_supervisor.state import read_state, state_path

NOT_RUNNING = ("exited", "created", "dead")


async def remove_stopped(docker: aiodocker.Docker, name: str, say: Reporter) -> None:
    """Remove this deployment's stopped containers, saying so in one line each."""
    for found in await containers.list_ours(docker, name):
        if found.get("State") not in NOT_RUNNING:
            continue
        cid = found["Id"]
        state = read_state(name) or {}
        collected = ""
        if state.get("cid") == cid and state.get("session"):
            total = await collect_missing(docker, cid, state)
            collected = f"; {total} missing log bytes collected into {state['session']}"
            state_path(name).unlink(missing_ok=True)
        await containers.remove(docker, cid)
        say(f"recreating container {name}: the previous one ({cid[:12]}) was "
            f"{found.get('Status') or found.get('State')} and is removed{collected}")


async def collect_missing(docker: aiodocker.Docker, cid: str, state: dict) -> int:
    """Append what each service wrote beyond its session file; the byte count appended."""
    session = Path(state["session"])
    if not session.is_dir():
        return 0
    try:
        files = await exec_streams.read_files(docker, cid, state["log_dir"])
    except EngineError:
        return 0
    total = 0
    events = EventLog(session / "out.log")
    try:
        for service in state.get("services", []):
            data = files.get(f"{service}.log")
            path = session / f"{service}.log"
            have = path.stat().st_size if path.exists() else 0
            if data is None or len(data) <= have:
                continue
            with open(path, "ab") as fh:
                fh.write(data[have:])
            total += len(data) - have
            events.event(f"{service}: collected {len(data) - have} bytes written after the "
                         "logger stopped (container found stopped by a later up)")
    finally:
        events.close()
    return total
