"""Rotation faults with a real engine: the host file must equal the concatenation of the
in-container generations (``<svc>.log.1`` then ``<svc>.log``), every line exactly once."""

from __future__ import annotations

import subprocess

import pytest

from tests.engine_helpers import wait_until
from tests.faults.support import assert_consecutive, host_file, in_container, kill_logger

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("engine")]

LOG = "/var/log/loon/rot.log"
ROTATE = {
    "rename": f"mv {LOG} {LOG}.1",  # supervisord: rename, reopen at once
    "rename-gap": f"mv {LOG} {LOG}.1; sleep 1",  # the file is missing for a second
    "copytruncate": f"cp {LOG} {LOG}.1; : > {LOG}",  # logrotate's copytruncate
}


def rotating(at: int, rotate: str, total: int = 1500, pause_at: int | None = None) -> str:
    """Numbered lines appended (file reopened per line, as after a reopen), one rotation."""
    pause = (f'if [ $i = {pause_at} ]; then while [ ! -e /tmp/go ]; do usleep 50000; done; fi; '
             if pause_at else "")
    return (f'sleep 2; i=0; while [ $i -lt {total} ]; do i=$((i+1)); echo "rot $i" >> {LOG}; '
            f'usleep 300; {pause}if [ $i = {at} ]; then {rotate}; fi; done; '
            'touch /tmp/done; exec sleep 100000')


def has_last(d, n: int = 1500) -> bool:  # type: ignore[no-untyped-def]
    return host_file(d, "rot").endswith(f"rot {n}\n".encode())


@pytest.mark.parametrize("mode", list(ROTATE))
def test_live_rotation_reaches_the_host_exactly_once(deploy, mode: str) -> None:  # type: ignore[no-untyped-def]
    d = deploy({"rot": rotating(700, ROTATE[mode])})
    assert d.run("-d", timeout=120).returncode == 0
    wait_until(lambda: has_last(d), timeout=30)
    host = host_file(d, "rot")
    assert host == in_container(d, "rot")
    assert_consecutive(host.decode(), "rot")
    assert d.run("-D", timeout=60).returncode == 0
    assert host_file(d, "rot") == host


def test_rotation_while_the_logger_is_dead_then_attach(deploy) -> None:  # type: ignore[no-untyped-def]
    d = deploy({"rot": rotating(1000, ROTATE["rename"], pause_at=500)})
    assert d.run("-d", timeout=120).returncode == 0
    wait_until(lambda: b"rot 500\n" in host_file(d, "rot"), timeout=30)
    kill_logger(d)
    subprocess.run(["docker", "exec", d.name, "touch", "/tmp/go"], check=True)
    wait_until(lambda: subprocess.run(["docker", "exec", d.name, "test", "-e", "/tmp/done"]
                                      ).returncode == 0, timeout=30)
    attach = d.loon("attach", "--name", d.name)
    assert attach.returncode == 0, attach.stdout + attach.stderr
    wait_until(lambda: has_last(d), timeout=30)
    host = host_file(d, "rot")
    assert host == in_container(d, "rot")
    assert_consecutive(host.decode(), "rot")
    assert d.run("-D", timeout=60).returncode == 0


def test_truncation_follows_the_new_content(deploy) -> None:  # type: ignore[no-untyped-def]
    clear = f"sleep 1; cp {LOG} /tmp/before-clear; : > {LOG}"  # supervisorctl clear
    d = deploy({"rot": rotating(500, clear, total=1000)})
    assert d.run("-d", timeout=120).returncode == 0
    wait_until(lambda: has_last(d, 1000), timeout=30)
    before = subprocess.run(["docker", "exec", d.name, "cat", "/tmp/before-clear"],
                            capture_output=True, check=True).stdout
    host = host_file(d, "rot")
    assert host == before + in_container(d, "rot", ("",))
    assert_consecutive(host.decode(), "rot")
    assert d.run("-D", timeout=60).returncode == 0


def test_live_rotation_with_busybox_tail(deploy) -> None:  # type: ignore[no-untyped-def]
    """Images without GNU tail: busybox's polling ``tail -F`` and its own notices."""
    d = deploy({"rot": rotating(700, ROTATE["rename"])}, gnu_tail=False)
    assert d.run("-d", timeout=120).returncode == 0
    wait_until(lambda: has_last(d), timeout=30)
    host = host_file(d, "rot")
    assert host == in_container(d, "rot")
    assert_consecutive(host.decode(), "rot")
    assert d.run("-D", timeout=60).returncode == 0


def generations(k: int) -> str:
    """supervisord's rotation with backups: .log.k-1 -> .log.k ... .log -> .log.1."""
    return "; ".join([*(f"mv {LOG}.{i} {LOG}.{i + 1} 2>/dev/null" for i in range(k - 1, 0, -1)),
                      f"mv {LOG} {LOG}.1"])


@pytest.mark.parametrize("rotations", [2, 3])
def test_several_rotations_while_the_logger_is_dead(deploy, rotations: int) -> None:  # type: ignore[no-untyped-def]
    """Issue 23 defect 4: every generation on disk reaches the host once, in order (only
    ``.log.1`` was searched: the middle generations were reported missing)."""
    at = " ".join(str(600 + 150 * r) for r in range(rotations))
    rotate = generations(rotations)
    script = (f'sleep 2; i=0; while [ $i -lt 1500 ]; do i=$((i+1)); echo "rot $i" >> {LOG}; '
              'usleep 300; if [ $i = 500 ]; then while [ ! -e /tmp/go ]; do usleep 50000; '
              f'done; fi; for r in {at}; do if [ $i = $r ]; then {rotate}; fi; done; done; '
              'touch /tmp/done; exec sleep 100000')
    d = deploy({"rot": script})
    assert d.run("-d", timeout=120).returncode == 0
    wait_until(lambda: b"rot 500\n" in host_file(d, "rot"), timeout=30)
    kill_logger(d)
    subprocess.run(["docker", "exec", d.name, "touch", "/tmp/go"], check=True)
    wait_until(lambda: subprocess.run(["docker", "exec", d.name, "test", "-e", "/tmp/done"]
                                      ).returncode == 0, timeout=30)
    parts = tuple(f".{i}" for i in range(rotations, 0, -1)) + ("",)
    whole = in_container(d, "rot", parts)
    assert_consecutive(whole.decode(), "rot")  # the generations hold every line
    attach = d.loon("attach", "--name", d.name)
    assert attach.returncode == 0, attach.stdout + attach.stderr
    wait_until(lambda: has_last(d), timeout=30)
    assert host_file(d, "rot") == whole
    assert d.run("-D", timeout=60).returncode == 0
    assert host_file(d, "rot") == whole


@pytest.mark.parametrize("rotations", [2, 3])
def test_down_collects_generations_rotated_while_the_logger_was_dead(deploy, rotations: int) -> None:  # type: ignore[no-untyped-def]
    """Issue 23 defects 1, 2 and 4: ``down`` after a dead logger reads the followed file's
    rest and every newer generation (it read the new file from the old offset)."""
    at = " ".join(str(600 + 150 * r) for r in range(rotations))
    rotate = generations(rotations)
    script = (f'sleep 2; i=0; while [ $i -lt 1500 ]; do i=$((i+1)); echo "rot $i" >> {LOG}; '
              'usleep 300; if [ $i = 500 ]; then while [ ! -e /tmp/go ]; do usleep 50000; '
              f'done; fi; for r in {at}; do if [ $i = $r ]; then {rotate}; fi; done; done; '
              'touch /tmp/done; exec sleep 100000')
    d = deploy({"rot": script})
    assert d.run("-d", timeout=120).returncode == 0
    wait_until(lambda: b"rot 500\n" in host_file(d, "rot"), timeout=30)
    kill_logger(d)
    subprocess.run(["docker", "exec", d.name, "touch", "/tmp/go"], check=True)
    wait_until(lambda: subprocess.run(["docker", "exec", d.name, "test", "-e", "/tmp/done"]
                                      ).returncode == 0, timeout=30)
    parts = tuple(f".{i}" for i in range(rotations, 0, -1)) + ("",)
    whole = in_container(d, "rot", parts)
    assert_consecutive(whole.decode(), "rot")
    down = d.run("-D", timeout=60)
    assert down.returncode == 0, down.stdout + down.stderr
    assert host_file(d, "rot") == whole
