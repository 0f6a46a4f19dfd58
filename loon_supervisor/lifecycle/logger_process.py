"""The background logger process: started by ``up -d``, ``attach`` and a foreground run
whose terminal hung up; stopped by ``down`` and ``up --replace``.

The deployment's lock (see :mod:`loon_supervisor.lifecycle.state`) is passed to the logger
as an inherited descriptor, so exactly one process follows a deployment at any moment. The
logger's body is :func:`loon_supervisor.verbs.logger.logger_main`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import replace

import anyio

from loon_supervisor.lifecycle import state as statefile
from loon_supervisor.lifecycle.deployment import ENGINE_GRACE
from loon_supervisor.lifecycle.state import (
    LOCK_FD_ENV,
    DeploymentLock,
    DeploymentState,
    lock_holder,
    wait_unlocked,
)
from loon_supervisor.sinks.reporter import Reporter
from loon_supervisor.sinks.session import LOGGER_STDERR

ATTACH_TIMEOUT = 60.0
# What a swarm deployment's teardown may take beyond a container's (swarm/up.py's budget).
SWARM_TEARDOWN = 180.0


def spawn_logger(state: DeploymentState, lock: DeploymentLock) -> subprocess.Popen[bytes]:
    """Start ``loon _logger NAME`` in its own session, holding our lock's descriptor."""
    err = open(state.session / LOGGER_STDERR, "ab")  # noqa: SIM115 - handed to the child
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "loon_supervisor", "_logger", state.name],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
            start_new_session=True, close_fds=True, pass_fds=(lock.fd,), cwd=os.getcwd(),
            env={**os.environ, LOCK_FD_ENV: str(lock.fd)},
        )
    finally:
        err.close()


async def wait_attached(name: str, proc: subprocess.Popen[bytes],
                        give_up: anyio.Event | None = None) -> bool:
    """Until the logger says (in the state file) that it follows every stream."""
    with anyio.move_on_after(ATTACH_TIMEOUT):
        while give_up is None or not give_up.is_set():
            current = statefile.load(name)
            if current is not None and current.attached and current.logger_pid == proc.pid:
                return True
            if proc.poll() is not None:
                return False
            await anyio.sleep(0.05)
    return False


async def start_logger(state: DeploymentState, lock: DeploymentLock,
                       give_up: anyio.Event | None = None
                       ) -> tuple[subprocess.Popen[bytes], bool]:
    """Write the state, start the logger with the lock, wait until it follows every stream.
    On success our copy of the lock is released (the logger holds it)."""
    statefile.save(replace(state, logger_pid=None, attached=False))
    proc = spawn_logger(state, lock)
    ok = await wait_attached(state.name, proc, give_up)
    if ok:
        lock.release()
    elif proc.poll() is not None:
        reclaim(lock)
    return proc, ok


def reclaim(lock: DeploymentLock) -> None:
    """The logger died before it attached: the lock file names it (it wrote its pid when it
    took the inherited lock), but the lock is still ours. Name ourselves again, so ``down``
    signals the process that owns the deployment now, not a dead (or reused) pid."""
    if lock.fd >= 0:
        lock.set_owner(os.getpid())


async def stop_logger(name: str, say: Reporter) -> bool:
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
    current = statefile.load(name)
    if current is not None:  # the follower treats this stop as a normal one (exit 0)
        statefile.update(name, current.cid, down_requested=True)
    say(f"stopping the process following '{name}' (pid {holder}); it stops the "
                  "container and drains every stream...")
    for _ in range(50):
        try:
            os.kill(holder, signal.SIGTERM)
            break
        except ProcessLookupError:
            # It died between the lock check and the signal (a logger that failed during
            # a hand-over): whoever holds the lock now names itself in a moment.
            await anyio.sleep(0.1)
            again = lock_holder(name)
            if again is None:
                say(f"pid {holder} is gone and nobody holds the lock now")
                return True
            holder = again or holder
    limit = (current.stop_timeout if current else 10) + 2 * ENGINE_GRACE
    if current is not None and current.swarm:  # scale to zero, drain every task, remove
        limit += SWARM_TEARDOWN
    if not await anyio.to_thread.run_sync(wait_unlocked, name, limit):
        again = lock_holder(name)
        if again:
            say(f"pid {again} did not exit within {limit:.0f}s; killing it")
            os.kill(again, signal.SIGKILL)
            await anyio.to_thread.run_sync(wait_unlocked, name, 5.0)
    else:
        where = current.session if current else "the session"
        say(f"it exited; logs complete in {where}")
    return True
