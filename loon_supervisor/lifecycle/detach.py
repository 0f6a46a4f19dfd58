"""Detached mode: a background logger process that keeps writing the session files.

The foreground ``up -d`` builds and starts, then hands the running container to a logger
process (own session, no terminal) and returns once that logger has attached every stream.
A foreground ``up`` whose terminal hangs up (SIGHUP) hands over the same way, from the exact
stream positions it reached. The deployment's lock (see :mod:`loon_supervisor.lifecycle.state`) is
passed to the logger as an inherited descriptor, so exactly one process follows a deployment
at any moment. The state file names the container, the session directory, the logger's pid
and each stream's position inside its in-container file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import aiodocker
import anyio
from rich.console import Console

from loon_supervisor.engine import containers, images
from loon_supervisor.engine.client import open_engine
from loon_supervisor.engine.endpoint import resolve_endpoint
from loon_supervisor.lifecycle.control import Reporter, Run, watch_signals
from loon_supervisor.lifecycle.state import (
    LOCK_FD_ENV,
    DeploymentLock,
    lock_holder,
    read_state,
    state_path,
    wait_unlocked,
    write_state,
)
from loon_supervisor.sinks.session import EventLog
from loon_supervisor.streams.crashloop import CrashLoopPolicy
from loon_supervisor.streams.follow import ENGINE_GRACE, Streaming, bounded, stream_until_done

ATTACH_TIMEOUT = 60.0


def spawn_logger(name: str, session: Path, lock: DeploymentLock) -> subprocess.Popen[bytes]:
    """Start ``loon _logger NAME`` in its own session, holding our lock's descriptor."""
    err = open(session / "logger.stderr", "ab")  # noqa: SIM115 - handed to the child
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "loon_supervisor", "_logger", name],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
            start_new_session=True, close_fds=True, pass_fds=(lock.fd,), cwd=os.getcwd(),
            env={**os.environ, LOCK_FD_ENV: str(lock.fd)},
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


def deployment_state(name: str, cid: str, session: Path, contract: images.ImageContract,
                     url: str, stop_timeout: int) -> dict:
    """State for a deployment found running without one (``attach``)."""
    return {"name": name, "cid": cid, "session": str(session), "image": contract.image,
            "services": list(contract.services), "log_dir": contract.log_dir,
            "status_command": contract.status_command, "url": url,
            "stop_timeout": stop_timeout, "logger_pid": None, "attached": False,
            "foreground_pid": None, "positions": {}}


async def start_logger(name: str, state: dict, lock: DeploymentLock,
                       give_up: anyio.Event | None = None
                       ) -> tuple[subprocess.Popen[bytes], bool]:
    """Write the state, start the logger with the lock, wait until it follows every stream.
    On success our copy of the lock is released (the logger holds it)."""
    write_state(state_path(name), state)
    proc = spawn_logger(name, Path(state["session"]), lock)
    ok = await wait_attached(name, proc, give_up)
    if ok:
        lock.release()
    return proc, ok


async def hand_over(docker: aiodocker.Docker, run: Run, lock: DeploymentLock,
                    state: dict) -> int:
    """``up -d``: the running container goes to a background logger."""
    name, session = state["name"], Path(state["session"])
    proc, ok = await start_logger(name, state, lock, run.stop_requested)
    if not ok:
        if run.stop_signal is None:
            run.say("the background logger did not attach; see "
                    f"{session / 'logger.stderr'}; stopping the container")
        elif proc.poll() is None:
            # Ctrl+C during the hand-over: the logger owns the deployment now and stops it
            # gracefully itself, collecting every byte.
            proc.terminate()
            limit = int(state["stop_timeout"]) + ENGINE_GRACE
            with anyio.move_on_after(limit):
                while proc.poll() is None:
                    await anyio.sleep(0.1)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        with bounded(run, "removing the container", ENGINE_GRACE):
            await containers.stop(docker, state["cid"], int(state["stop_timeout"]))
            await containers.remove(docker, state["cid"])
        state_path(name).unlink(missing_ok=True)
        return 1 if run.stop_signal is None else 128 + run.stop_signal
    run.say(f"Loon is up: {state['url']}")
    run.say(f"logs are in {session} (a background logger, pid {proc.pid}, keeps writing them)")
    run.say("stop everything with: python3 build.py -D   (or: loon down)")
    return 0


async def stop_logger(name: str, console: Console) -> bool:
    """Ask the process holding the deployment's lock (a background logger or a foreground
    ``up``) to stop the container, drain and exit; wait for the lock to be free. Decided by
    the lock only: a stale state file's pid is never signalled."""
    holder = lock_holder(name)
    if holder is None:
        return False
    if holder == 0:  # just taken, pid not written yet
        await anyio.sleep(0.2)
        holder = lock_holder(name)
        if not holder:
            return holder == 0
    state = read_state(name) or {}
    if state:  # the follower treats this stop as a normal one (exit 0)
        write_state(state_path(name), {**state, "down_requested": True})
    console.print(f"stopping the process following '{name}' (pid {holder}); it stops the "
                  "container and drains every stream...")
    os.kill(holder, signal.SIGTERM)
    limit = int(state.get("stop_timeout", 10)) + 2 * ENGINE_GRACE
    if not await anyio.to_thread.run_sync(wait_unlocked, name, limit):
        again = lock_holder(name)
        if again:
            console.print(f"pid {again} did not exit within {limit}s; killing it")
            os.kill(again, signal.SIGKILL)
            await anyio.to_thread.run_sync(wait_unlocked, name, 5.0)
    else:
        console.print(f"it exited; logs complete in {state.get('session', 'the session')}")
    return True


async def logger_main(name: str) -> int:
    """The background logger's body (``loon _logger NAME``)."""
    lock = DeploymentLock.inherited(name) or DeploymentLock.acquire(name)
    if lock is None:
        print(f"deployment {name} is already followed by pid {lock_holder(name)}",
              file=sys.stderr)
        return 1
    state = read_state(name)
    if state is None:
        print(f"no state for deployment {name}", file=sys.stderr)
        lock.release()
        return 1
    session = Path(state["session"])
    events = EventLog(session / "out.log")
    say = Reporter(events, None)
    say(f"engine: {resolve_endpoint().describe()}")
    run = Run(say=say)
    contract = images.ImageContract(state["image"], tuple(state["services"]), state["log_dir"],
                                    state.get("status_command"))
    cid = state["cid"]

    def save(positions: dict) -> None:
        current = read_state(name)
        if current is not None and current.get("cid") == cid:
            write_state(state_path(name), {**current, "positions": positions})

    try:
        async with open_engine() as docker, anyio.create_task_group() as tg:
            tg.start_soon(watch_signals, run)
            s = Streaming(docker, cid, contract, session, int(state["stop_timeout"]), None,
                          mark=name, saved_cursors=state.get("positions") or {},
                          crash_policy=CrashLoopPolicy(*state.get("crash_loop", ())))
            attached = anyio.Event()

            async def mark_attached() -> None:
                await attached.wait()
                write_state(state_path(name), {**state, "logger_pid": os.getpid(),
                                                "attached": True, "positions": s.positions()})
                say(f"background logger {os.getpid()} attached to every stream")

            tg.start_soon(mark_attached)
            delay = os.environ.get("LOON_FAULT_DELAY_ATTACH")  # tests: signal mid hand-over
            if delay:
                await anyio.sleep(float(delay))
            await stream_until_done(s, run, attached, save)
            with bounded(run, "removing the container", ENGINE_GRACE):
                await containers.remove(docker, cid)
            reason = run.failure or ("stopped on request" if run.stop_signal else "stream ended")
            say(f"background logger exiting: {reason}; container removed")
            tg.cancel_scope.cancel()
        current = read_state(name)
        if current is not None and current.get("cid") == cid:  # never a newer deployment's
            state_path(name).unlink(missing_ok=True)
        return 1 if run.teardown_failed else 0
    finally:
        events.close()
        lock.release()


async def attach(name: str, console: Console) -> int:
    """Start following a running deployment again, continuing its session files."""
    lock = DeploymentLock.acquire(name)
    if lock is None:
        console.print(f"deployment '{name}' is already followed (pid {lock_holder(name)})")
        return 0
    try:
        state = read_state(name)
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
        state = {**state, "logger_pid": None, "attached": False}
        session = Path(state["session"])
        proc, ok = await start_logger(name, state, lock)
        if not ok:
            console.print(f"the logger did not attach; see {session / 'logger.stderr'}")
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            return 1
        sizes = ", ".join(f"{s} at byte {(session / f'{s}.log').stat().st_size}"
                          for s in state["services"] if (session / f"{s}.log").exists())
        console.print(f"re-attached (logger pid {proc.pid}) into {session}: {sizes}")
        return 0
    finally:
        lock.release()


async def _state_for(docker: aiodocker.Docker, name: str, cid: str) -> dict:
    from loon_supervisor.paths import logs_dir
    from loon_supervisor.sinks.session import new_session_dir

    info = await containers.inspect(docker, cid) or {}
    image = (info.get("Config") or {}).get("Image", "")
    contract = await images.read_contract(docker, image)
    return deployment_state(name, cid, new_session_dir(logs_dir()), contract, "",
                            int((info.get("Config") or {}).get("StopTimeout") or 10))


