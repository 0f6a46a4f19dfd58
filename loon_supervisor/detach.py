"""Detached mode: a background logger process that keeps writing the session files.

The foreground ``up -d`` builds and starts, then hands the running container to a logger
process (own session, no terminal) and returns once that logger has attached every stream.
The logger's state file (``.build-files/state.<name>.json``, written atomically) names the
container, the session directory and the logger's pid. Resume points are the session files'
sizes: every byte in a file came from the stream in order, so ``tail -c +size+1`` continues
exactly where it stopped, whether the logger died or a stream broke.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiodocker
import anyio
from rich.console import Console

from loon_supervisor.crashloop import CrashLoopPolicy
from loon_supervisor.engine import containers, images
from loon_supervisor.engine.client import open_engine
from loon_supervisor.follow import Streaming, stream_until_done
from loon_supervisor.logs.session import EventLog
from loon_supervisor.prepare import Prepared
from loon_supervisor.run import Reporter, Run, watch_signals
from loon_supervisor.state import pid_alive, read_state, state_path, write_state

ATTACH_TIMEOUT = 60.0


def spawn_logger(name: str, session: Path) -> subprocess.Popen[bytes]:
    err = open(session / "logger.stderr", "ab")  # noqa: SIM115 - handed to the child
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "loon_supervisor", "_logger", name],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
            start_new_session=True, close_fds=True, cwd=os.getcwd(),
        )
    finally:
        err.close()


async def wait_attached(name: str, proc: subprocess.Popen[bytes],
                        give_up: anyio.Event | None = None) -> bool:
    with anyio.move_on_after(ATTACH_TIMEOUT):
        while give_up is None or not give_up.is_set():
            state = read_state(name) or {}
            if state.get("attached") and state.get("logger_pid") == proc.pid:
                return True
            if proc.poll() is not None:
                return False
            await anyio.sleep(0.05)
    return False


async def hand_over(docker: aiodocker.Docker, run: Run, prepared: Prepared,
                    contract: images.ImageContract, session: Path) -> int:
    cfg = prepared.config
    name = cfg.deploymentSettings.containerName
    write_state(state_path(name), {
        "name": name, "cid": run.cid, "session": str(session), "image": contract.image,
        "services": list(contract.services), "log_dir": contract.log_dir,
        "status_command": contract.status_command, "url": cfg.url,
        "stop_timeout": cfg.deploymentSettings.stopTimeout, "logger_pid": None,
        "crash_loop": [cfg.deploymentSettings.crashLoopRestarts,
                       cfg.deploymentSettings.crashLoopWindow],
        "attached": False,
    })
    proc = spawn_logger(name, session)
    if not await wait_attached(name, proc, run.stop_requested):
        if run.stop_signal is None:
            run.say("the background logger did not attach; see "
                    f"{session / 'logger.stderr'}; stopping the container")
        with anyio.CancelScope(shield=True):
            if proc.poll() is None:
                proc.kill()
            await containers.remove(docker, run.cid)
            state_path(name).unlink(missing_ok=True)
        return 1 if run.stop_signal is None else 128 + run.stop_signal
    run.say(f"Loon is up: {cfg.url}")
    run.say(f"logs are in {session} (a background logger, pid {proc.pid}, keeps writing them)")
    run.say("stop everything with: python3 build.py -D   (or: loon down)")
    return 0


async def stop_logger(name: str, console: Console) -> bool:
    """Ask a live logger to stop the container, drain and exit; wait for it."""
    state = read_state(name)
    if not state:
        return False
    pid = state.get("logger_pid")
    if not pid_alive(pid):
        return False
    console.print(f"stopping the background logger (pid {pid}); it stops the container "
                  "and drains every stream...")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + int(state.get("stop_timeout", 10)) + 30
    while pid_alive(pid) and time.monotonic() < deadline:
        await anyio.sleep(0.1)
    if pid_alive(pid):
        console.print("the logger did not exit in time; killing it")
        os.kill(pid, signal.SIGKILL)
    else:
        console.print(f"background logger exited; logs complete in {state.get('session')}")
    return True


async def logger_main(name: str) -> int:
    """The background logger's body (``loon _logger NAME``)."""

    state = read_state(name)
    if state is None:
        print(f"no state for deployment {name}", file=sys.stderr)
        return 1
    session = Path(state["session"])
    events = EventLog(session / "out.log")
    say = Reporter(events, None)
    run = Run(say=say)
    contract = images.ImageContract(state["image"], tuple(state["services"]), state["log_dir"],
                                    state.get("status_command"))
    try:
        async with open_engine() as docker, anyio.create_task_group() as tg:
            tg.start_soon(watch_signals, run)
            s = Streaming(docker, state["cid"], contract, session, int(state["stop_timeout"]),
                          None, crash_policy=CrashLoopPolicy(*state.get("crash_loop", ())))
            attached = anyio.Event()

            async def mark_attached() -> None:
                await attached.wait()
                write_state(state_path(name), {**state, "logger_pid": os.getpid(),
                                                "attached": True})
                say(f"background logger {os.getpid()} attached to every stream")

            tg.start_soon(mark_attached)
            await stream_until_done(s, run, attached)
            with anyio.CancelScope(shield=True):
                await containers.remove(docker, state["cid"])
            reason = run.failure or ("stopped on request" if run.stop_signal else "stream ended")
            say(f"background logger exiting: {reason}; container removed")
            tg.cancel_scope.cancel()
        state_path(name).unlink(missing_ok=True)
        return 0
    finally:
        events.close()


async def attach(name: str, console: Console) -> int:
    """Start following a running deployment again, continuing its session files."""
    state = read_state(name)
    if state and pid_alive(state.get("logger_pid")):
        console.print(f"the background logger (pid {state['logger_pid']}) is already "
                      f"writing {state['session']}")
        return 0
    async with open_engine() as docker:
        found = [c for c in await containers.list_ours(docker, name)
                 if c.get("State") == "running"]
        if not found:
            console.print(f"no running container of deployment '{name}': start it with "
                          "`python3 build.py` (or `loon up`)")
            return 1
        cid = found[0]["Id"]
        if not state or state.get("cid") != cid:
            console.print("no logger state for this container: starting a new session")
            state = await _state_for(docker, name, cid)
    session = Path(state["session"])
    write_state(state_path(name), {**state, "logger_pid": None, "attached": False})
    proc = spawn_logger(name, session)
    if not await wait_attached(name, proc):
        console.print(f"the logger did not attach; see {session / 'logger.stderr'}")
        return 1
    sizes = ", ".join(f"{s} at byte {(session / f'{s}.log').stat().st_size}"
                      for s in state["services"] if (session / f"{s}.log").exists())
    console.print(f"re-attached (logger pid {proc.pid}) into {session}: {sizes}")
    return 0


async def _state_for(docker: aiodocker.Docker, name: str, cid: str) -> dict:
    from loon_supervisor.logs.session import new_session_dir
    from loon_supervisor.paths import logs_dir

    info = await containers.inspect(docker, cid) or {}
    image = (info.get("Config") or {}).get("Image", "")
    contract = await images.read_contract(docker, image)
    return {"name": name, "cid": cid, "session": str(new_session_dir(logs_dir())),
            "image": image, "services": list(contract.services), "log_dir": contract.log_dir,
            "status_command": contract.status_command, "url": "",
            "stop_timeout": int((info.get("Config") or {}).get("StopTimeout") or 10),
            "logger_pid": None, "attached": False}
