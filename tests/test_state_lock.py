"""The deployment lock decides who follows: held by a live process, dropped by the kernel
when it dies, handed to a child without a gap, and a stale pid is never reported."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loon_supervisor.lifecycle.state import LOCK_FD_ENV, DeploymentLock, lock_holder, lock_path


@pytest.fixture(autouse=True)
def _project(project: Path) -> Path:
    return project


HOLD = """
import os, sys, time
from loon_supervisor.lifecycle.state import DeploymentLock
lock = DeploymentLock.inherited("d") or DeploymentLock.acquire("d")
print("held" if lock else "refused", flush=True)
time.sleep(float(sys.argv[1]))
"""


def spawn(seconds: float, **kw) -> subprocess.Popen[str]:  # type: ignore[no-untyped-def]
    return subprocess.Popen([sys.executable, "-c", HOLD, str(seconds)], stdout=subprocess.PIPE,
                            text=True, env={**os.environ, **kw.pop("env", {})}, **kw)


def test_holder_is_the_live_process_and_dies_with_it() -> None:
    assert lock_holder("d") is None
    child = spawn(30)
    assert child.stdout.readline().strip() == "held"
    assert lock_holder("d") == child.pid
    assert DeploymentLock.acquire("d", wait=0.1) is None
    child.kill()
    child.wait()
    assert lock_holder("d") is None  # the kernel dropped it: no stale pid


def test_a_pid_written_in_a_free_lock_file_is_never_reported() -> None:
    lock_path("d").parent.mkdir(parents=True, exist_ok=True)
    lock_path("d").write_text(f"{os.getpid()}\n")
    assert lock_holder("d") is None


def test_hand_over_to_a_child_leaves_no_gap() -> None:
    lock = DeploymentLock.acquire("d")
    assert lock is not None and lock_holder("d") == os.getpid()
    child = spawn(30, pass_fds=(lock.fd,), env={LOCK_FD_ENV: str(lock.fd)})
    assert child.stdout.readline().strip() == "held"
    lock.release()
    assert lock_holder("d") == child.pid
    assert DeploymentLock.acquire("d", wait=0.1) is None
    child.kill()
    child.wait()
    deadline = time.monotonic() + 5
    while lock_holder("d") is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lock_holder("d") is None
