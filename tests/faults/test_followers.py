"""One logger per deployment, decided by the lock: stale state files, concurrent attaches,
attach during ``up -d``, repeated ``kill -9`` + attach, container.log after attach, and
``down`` while the logger is dead."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.engine_helpers import containers_named, wait_until
from tests.faults.support import (
    assert_consecutive,
    expected_followers,
    followers,
    host_file,
    kill_logger,
    lock_holder,
    loggers,
)
from tests.test_detached import files_match_container, writer
from tests.test_up_flow import ticker

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("engine")]


def test_stale_state_pid_of_an_unrelated_process_survives_down(deploy) -> None:  # type: ignore[no-untyped-def]
    d = deploy({"alpha": ticker("alpha")})
    bystander = subprocess.Popen(["sleep", "300"])
    try:
        state = d.project / ".build-files" / f"state.{d.name}.json"
        state.parent.mkdir(parents=True, exist_ok=True)
        state.write_text(json.dumps({"name": d.name, "cid": "0" * 64, "session": "/nowhere",
                                     "logger_pid": bystander.pid, "attached": True}))
        down = d.run("-D", timeout=60)
        assert down.returncode == 0, down.stdout + down.stderr
        time.sleep(0.5)
        assert bystander.poll() is None, "down signalled a process that only had a stale pid"
        status = d.loon("status", "--name", d.name)
        assert f"pid {bystander.pid}" not in status.stdout
    finally:
        bystander.kill()
        bystander.wait()


def test_two_attaches_at_once_start_exactly_one_logger(deploy) -> None:  # type: ignore[no-untyped-def]
    d = deploy({"alpha": ticker("alpha", "0.02"), "beta": ticker("beta", "0.02")})
    assert d.run("-d", timeout=120).returncode == 0
    kill_logger(d)
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: d.loon("attach", "--name", d.name), range(2)))
    assert all(r.returncode == 0 for r in results), [r.stdout + r.stderr for r in results]
    assert sum("already followed" in r.stdout for r in results) == 1
    wait_until(lambda: len(loggers(d)) == 1, timeout=10)
    assert lock_holder(d) == loggers(d)[0]
    assert followers(d) == expected_followers(d, ["alpha", "beta"])
    assert d.run("-D", timeout=60).returncode == 0
    for n in ("alpha", "beta"):
        assert_consecutive(host_file(d, n).decode(), n)


def test_attach_during_up_d_starts_no_second_logger(deploy) -> None:  # type: ignore[no-untyped-def]
    d = deploy({"alpha": ticker("alpha")})
    up = d.start("-d")
    wait_until(lambda: any(c.get("State") == "running" for c in containers_named(d.name)),
               timeout=60, interval=0.02)
    attach = d.loon("attach", "--name", d.name)
    assert up.wait(timeout=60) == 0
    assert attach.returncode in (0, 1), attach.stdout + attach.stderr
    wait_until(lambda: len(loggers(d)) >= 1, timeout=10)
    time.sleep(1)
    assert len(loggers(d)) == 1
    assert followers(d) == expected_followers(d, ["alpha"])
    assert d.run("-D", timeout=60).returncode == 0
    assert_consecutive(host_file(d, "alpha").decode(), "alpha")


def test_kill_9_and_attach_three_times_leaves_one_follower_per_service(deploy) -> None:  # type: ignore[no-untyped-def]
    names = ["w1", "w2"]
    counter = ('i=0; while :; do i=$((i+1)); echo "tick $i"; usleep 100000; done')
    d = deploy({n: writer(n, 4000) for n in names}, main=counter)
    assert d.run("-d", timeout=120).returncode == 0
    for _ in range(3):
        time.sleep(0.5)
        kill_logger(d)
        time.sleep(0.5)
        attach = d.loon("attach", "--name", d.name)
        assert attach.returncode == 0, attach.stdout + attach.stderr
    assert followers(d) == expected_followers(d, names)
    wait_until(lambda: files_match_container(d, names), timeout=30)
    # container.log: the engine's log re-read from its start, minus what the file had
    text = host_file(d, "container").decode()
    ticks = [line for line in text.splitlines() if line.startswith("tick ")]
    assert ticks == [f"tick {i}" for i in range(1, len(ticks) + 1)]
    assert d.run("-D", timeout=60).returncode == 0


def test_down_while_the_logger_is_dead_collects_the_rest(deploy) -> None:  # type: ignore[no-untyped-def]
    d = deploy({"alpha": ticker("alpha", "0.02")})
    assert d.run("-d", timeout=120).returncode == 0
    wait_until(lambda: b"alpha 10\n" in host_file(d, "alpha"), timeout=30)
    pid = kill_logger(d)
    time.sleep(1.5)  # the service keeps writing while nobody follows
    down = d.run("-D", timeout=60)
    assert down.returncode == 0, down.stdout + down.stderr
    assert containers_named(d.name) == []
    text = host_file(d, "alpha").decode()
    assert text.endswith("bye alpha\n")
    assert_consecutive(text, "alpha")
    assert not os.path.exists(f"/proc/{pid}")


def test_down_during_a_foreground_run_is_a_normal_stop(deploy) -> None:  # type: ignore[no-untyped-def]
    d = deploy({"alpha": ticker("alpha", "0.02")})
    proc = d.start()
    d.wait_out_log("Loon is up")
    assert lock_holder(d) == proc.pid
    down = d.run("-D", timeout=60)
    assert down.returncode == 0, down.stdout + down.stderr
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "exited on its own" not in out and "Traceback" not in out
    text = host_file(d, "alpha").decode()
    assert text.endswith("bye alpha\n")
    assert_consecutive(text, "alpha")
    assert containers_named(d.name) == []


def ctrl_c_and_collected(d, proc, timeout: float) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """Ctrl+C to ``up -d`` during its hand-over: it exits 130 with no logger and no
    container left. (its output, alpha's host file)"""
    logger = loggers(d)[0]
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 130, out
    assert not os.path.exists(f"/proc/{logger}") or loggers(d) == []
    assert containers_named(d.name) == []
    return out, host_file(d, "alpha").decode()


def test_ctrl_c_before_the_logger_can_handle_it_loses_nothing(deploy) -> None:  # type: ignore[no-untyped-def]
    """Ctrl+C so early in the hand-over that the logger's TERM lands before its signal
    handlers exist (CI hit it once): the logger ends at once, so `up -d` itself stops the
    container, collects every byte from the start and removes it, as `down` does for a dead
    logger."""
    d = deploy({"alpha": ticker("alpha", "0.02")})
    proc = d.start("-d", LOON_TEST_DELAY_LOGGER_BOOT="3")
    wait_until(lambda: bool(loggers(d)), timeout=60, interval=0.02)
    time.sleep(0.5)  # the service writes; nobody follows yet
    out, text = ctrl_c_and_collected(d, proc, timeout=90)
    assert text.startswith("alpha 1\n") and text.endswith("bye alpha\n"), out
    assert_consecutive(text, "alpha")
    assert "collected the log bytes the stopped follower had missed" in \
        (d.session() / "out.log").read_text()


def test_a_logger_that_dies_before_attaching_leaves_no_stale_pid(deploy) -> None:  # type: ignore[no-untyped-def]
    """The logger wrote its pid into the lock file when it took the inherited lock, then
    died before attaching: `up -d` (still holding the lock while it cleans up) names itself
    again, so `down` would signal it and not a dead or reused pid (issue 23)."""
    d = deploy({"alpha": ticker("alpha", "0.02")})
    proc = d.start("-d", LOON_TEST_DELAY_ATTACH="5")
    wait_until(lambda: bool(loggers(d)) and lock_holder(d) in loggers(d), timeout=60,
               interval=0.02)
    logger = lock_holder(d)
    assert logger is not None
    os.kill(logger, signal.SIGKILL)
    wait_until(lambda: lock_holder(d) == proc.pid, timeout=10, interval=0.02)
    out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 1, out
    assert "did not attach" in out and "Traceback" not in out
    assert containers_named(d.name) == []
    text = host_file(d, "alpha").decode()
    assert text.endswith("bye alpha\n")
    assert_consecutive(text, "alpha")


def test_ctrl_c_during_the_up_d_hand_over_stops_gracefully(deploy) -> None:  # type: ignore[no-untyped-def]
    d = deploy({"alpha": ticker("alpha", "0.02")})
    proc = d.start("-d", LOON_TEST_DELAY_ATTACH="3")
    wait_until(lambda: bool(loggers(d)) and lock_holder(d) in loggers(d), timeout=60,
               interval=0.02)
    _, text = ctrl_c_and_collected(d, proc, timeout=60)
    assert text.endswith("bye alpha\n")  # stopped with TERM by the logger, then collected
    assert_consecutive(text, "alpha")


DRAINED = "the log followers read their files to the end"
NOT_DRAINED = "the log followers had not ended"


def assert_drained_at_eof(d) -> None:  # type: ignore[no-untyped-def]
    """The teardown did not wait out the drain grace: every follower (both sources) ended
    at its file's end once the container had stopped (issue 23, defect 5)."""
    out = (d.session() / "out.log").read_text()
    assert DRAINED in out and NOT_DRAINED not in out, out[-2000:]


def test_ctrl_c_ends_the_followers_at_their_files_ends(deploy) -> None:  # type: ignore[no-untyped-def]
    """SIGINT on a foreground run whose services stop at once: the followers end at EOF
    instead of waiting out the drain grace, and still get every line (the last ones
    written during the stop included)."""
    d = deploy({"alpha": ticker("alpha", "0.02"), "beta": ticker("beta", "0.05")})
    proc = d.start()
    d.wait_out_log("Loon is up")
    wait_until(lambda: b"alpha 20\n" in host_file(d, "alpha"), timeout=30)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert_drained_at_eof(d)
    for name in ("alpha", "beta"):
        text = host_file(d, name).decode()
        assert text.endswith(f"bye {name}\n")
        assert_consecutive(text, name)
    assert containers_named(d.name) == []


def test_down_of_a_detached_run_ends_the_followers_at_their_files_ends(deploy) -> None:  # type: ignore[no-untyped-def]
    d = deploy({"alpha": ticker("alpha", "0.02")})
    assert d.run("-d", timeout=120).returncode == 0
    wait_until(lambda: b"alpha 20\n" in host_file(d, "alpha"), timeout=30)
    down = d.run("-D", timeout=60)
    assert down.returncode == 0, down.stdout + down.stderr
    assert_drained_at_eof(d)
    text = host_file(d, "alpha").decode()
    assert text.endswith("bye alpha\n")
    assert_consecutive(text, "alpha")
    assert containers_named(d.name) == []
