"""Faults on the host side: a full disk, a closed pipe, a paused terminal, a line that never
ends, a hang-up, and an engine that stops answering during teardown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.engine_helpers import containers_named, wait_until
from tests.faults.hang_proxy import HangingProxy
from tests.faults.support import assert_consecutive, host_file, lock_holder, loggers
from tests.test_detached import writer
from tests.test_up_flow import ticker

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("engine")]


def test_enospc_is_reported_and_the_teardown_stays_graceful(deploy) -> None:  # type: ignore[no-untyped-def]
    noisy = ('sleep 2; i=0; while [ $i -lt 3000 ]; do i=$((i+1)); '
             'echo "noisy $i xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"; '
             'done; exec sleep 100000')
    d = deploy({"noisy": noisy, "quiet": ticker("quiet", "0.1")})
    logs = d.project / "logs"
    logs.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(logs)], check=True)
    try:
        filler = logs / "filler"
        subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=4k", "count=40"],
                       capture_output=True)
        proc = d.start()
        d.wait_out_log("Loon is up")
        wait_until(lambda: proc.poll() is not None or os.statvfs(logs).f_bavail == 0,
                   timeout=30)
        time.sleep(1)  # the writes that hit the full disk are reported
        filler.unlink()  # room again: the other files must go on
        time.sleep(1)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 130, out
        assert "Traceback" not in out
        full = [line for line in out.splitlines() if "No space left on device" in line]
        # One sentence for the noisy file (out.log may add its own if its page was full).
        assert sum("noisy.log" in line for line in full) == 1, out
        assert all(line.startswith("cannot write ") for line in full), out
        quiet = host_file(d, "quiet").decode()
        assert quiet.endswith("bye quiet\n")  # the service got TERM: a graceful stop
        assert_consecutive(quiet, "quiet")
        assert containers_named(d.name) == []
    finally:
        subprocess.run(["umount", "-l", str(logs)], check=False)


def test_verbose_output_into_a_closed_pipe(deploy) -> None:  # type: ignore[no-untyped-def]
    d = deploy({"alpha": ticker("alpha", "0.02")})
    proc = subprocess.Popen([sys.executable, str(ROOT / "build.py"), "-v", "--config-file",
                             str(d.config)], cwd=d.root, env=d.env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    d.procs.append(proc)
    for _ in range(3):  # `| head -3`
        proc.stdout.readline()
    proc.stdout.close()
    d.wait_out_log("Loon is up")
    wait_until(lambda: b"alpha 50\n" in host_file(d, "alpha"), timeout=30)
    assert proc.poll() is None, "a closed terminal must not end the run"
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    err = proc.stderr.read()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "BrokenPipe" not in err
    text = host_file(d, "alpha").decode()
    assert text.endswith("bye alpha\n")
    assert_consecutive(text, "alpha")
    assert containers_named(d.name) == []


def test_a_paused_terminal_does_not_hold_up_the_files(deploy) -> None:  # type: ignore[no-untyped-def]
    d = deploy({"fast": writer("fast", 20000)})
    proc = subprocess.Popen([sys.executable, str(ROOT / "build.py"), "-v", "--config-file",
                             str(d.config)], cwd=d.root, env=d.env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    d.procs.append(proc)
    d.wait_out_log("Loon is up")
    # Nobody reads the pipe for 5 s: it fills within a second or two.
    sizes = []
    for _ in range(5):
        time.sleep(1)
        sizes.append(len(host_file(d, "fast")))
    assert all(b > a for a, b in zip(sizes, sizes[1:], strict=False)), sizes
    # The out.log clock keeps going too (signals and events are not stalled).
    proc.send_signal(signal.SIGINT)
    out = b""
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        out += proc.stdout.read1(1 << 20)
    proc.wait(timeout=10)
    assert proc.returncode == 130
    assert_consecutive(host_file(d, "fast").decode(), "fast")


def test_a_line_without_newline_reaches_the_disk(deploy) -> None:  # type: ignore[no-untyped-def]
    dots = ('sleep 1; i=0; while [ $i -lt 30 ]; do printf .; usleep 100000; i=$((i+1)); done; '
            'echo; echo done; exec sleep 100000')
    d = deploy({"dots": dots})
    assert d.run("-d", timeout=120).returncode == 0
    seen = []
    deadline = time.monotonic() + 4.5
    while time.monotonic() < deadline:
        data = host_file(d, "dots")
        if b"\n" in data:
            break
        seen.append(len(data))
        time.sleep(0.2)
    growing = sorted(set(n for n in seen if n))
    assert len(growing) >= 3, f"dots reached the file only at the newline: {seen}"
    wait_until(lambda: host_file(d, "dots") == b"." * 30 + b"\ndone\n", timeout=10)
    assert d.run("-D", timeout=60).returncode == 0


def test_sighup_hands_over_to_a_background_logger(deploy) -> None:  # type: ignore[no-untyped-def]
    d = deploy({"alpha": ticker("alpha", "0.02")})
    proc = d.start()
    d.wait_out_log("Loon is up")
    wait_until(lambda: b"alpha 20\n" in host_file(d, "alpha"), timeout=30)
    proc.send_signal(signal.SIGHUP)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    wait_until(lambda: len(loggers(d)) == 1, timeout=10)
    assert lock_holder(d) == loggers(d)[0]
    size = len(host_file(d, "alpha"))
    wait_until(lambda: len(host_file(d, "alpha")) > size + 200, timeout=10)
    assert "background logger" in (d.session() / "out.log").read_text()
    down = d.run("-D", timeout=60)
    assert down.returncode == 0, down.stdout + down.stderr
    text = host_file(d, "alpha").decode()
    assert text.endswith("bye alpha\n")
    assert_consecutive(text, "alpha")
    assert containers_named(d.name) == []


def test_an_engine_that_stops_answering_during_teardown(deploy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    d = deploy({"alpha": ticker("alpha")})
    proxy = HangingProxy(Path(f"/tmp/loon-hang-{os.getpid()}-{d.name}.sock"))
    proxy.start()
    try:
        proc = d.start(DOCKER_HOST=proxy.host, LOON_ENGINE_GRACE="3")
        d.wait_out_log("Loon is up")
        proxy.hang()
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
        took = time.monotonic() - started
        # Documented bound: stopTimeout (3) + LOON_ENGINE_GRACE (3) + 5 s for the followers.
        assert took < 3 + 3 + 5 + 5, took
        assert proc.returncode == 1, out
        assert "did not answer within" in out and "Traceback" not in out
    finally:
        proxy.close()
        proxy.path.unlink(missing_ok=True)
