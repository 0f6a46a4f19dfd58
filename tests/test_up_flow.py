"""The foreground up flow against a real engine: build.py runs as a subprocess, as an
operator runs it, and every check reads real files and real containers."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.engine_helpers import (
    SIGINT,
    SIGTERM,
    Deployment,
    container_files,
    containers_named,
    stop_with,
    wait_until,
)

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("engine")]


def ticker(name: str, period: str = "0.05") -> str:
    """Writes numbered lines until TERM, then a last 'bye' line (as a real service would)."""
    return (f"trap 'echo \"bye {name}\"; exit 0' TERM\n"
            f"i=0; while :; do i=$((i+1)); echo \"{name} $i\"; sleep {period}; done")


def no_leftover_processes(d: Deployment) -> bool:
    out = subprocess.run(["pgrep", "-f", str(d.config)], capture_output=True, text=True).stdout
    return out.strip() == ""


def test_eight_services_100k_lines_byte_identical(deploy) -> None:  # type: ignore[no-untyped-def]
    services = {f"s{i}": f'seq 1 100000 | sed "s/^/s{i} line /"; exec sleep 100000'
                for i in range(8)}
    d = deploy(services)
    proc = d.start()
    d.wait_out_log("Loon is up")
    expected = {f"s{i}": "".join(f"s{i} line {n}\n" for n in range(1, 100001)).encode()
                for i in range(8)}
    session = d.session()
    try:
        wait_until(lambda: all((session / f"{n}.log").exists() and
                               (session / f"{n}.log").stat().st_size == len(b)
                               for n, b in expected.items()), timeout=120)
    except AssertionError:  # say which stream stalled where, and what the session logged
        sizes = {n: (session / f"{n}.log").stat().st_size
                 if (session / f"{n}.log").exists() else None for n in expected}
        events = (session / "out.log").read_text(errors="replace")[-4000:]
        raise AssertionError(f"sizes {sizes} of {len(expected['s0'])}\n{events}") from None
    inside = container_files(d.name)
    code, out = stop_with(proc, SIGINT)
    assert code == 130, out
    for name, data in expected.items():
        host = (session / f"{name}.log").read_bytes()
        assert host == data == inside[f"{name}.log"], name
    assert containers_named(d.name) == []


AWKWARD = {
    "nonl": "printf 'first\\nsecond\\nlast-without-newline'; exec sleep 100000",
    "big": "head -c 100000 /dev/zero | tr '\\0' x; echo; echo after-big; exec sleep 100000",
    "badutf": "printf '\\377\\376 bad \\303\\050 end\\n'; printf 'ok\\n'; exec sleep 100000",
    "burst1": 'for r in 1 2 3 4 5 6 7 8; do seq 1 5000 | sed "s/^/b1 $r /"; sleep 0.1; done; '
              "exec sleep 100000",
    "burst2": 'for r in 1 2 3 4 5 6 7 8; do seq 1 5000 | sed "s/^/b2 $r /"; sleep 0.07; done; '
              "exec sleep 100000",
}


def test_awkward_output_survives_byte_for_byte(deploy) -> None:  # type: ignore[no-untyped-def]
    d = deploy(AWKWARD)
    proc = d.start()
    d.wait_out_log("Loon is up")
    expected = {
        "nonl": b"first\nsecond\nlast-without-newline",
        "big": b"x" * 100000 + b"\nafter-big\n",
        "badutf": b"\xff\xfe bad \xc3\x28 end\nok\n",
        "burst1": b"".join(f"b1 {r} {n}\n".encode() for r in range(1, 9)
                           for n in range(1, 5001)),
        "burst2": b"".join(f"b2 {r} {n}\n".encode() for r in range(1, 9)
                           for n in range(1, 5001)),
    }
    session = d.session()
    wait_until(lambda: all((session / f"{n}.log").exists() and
                           (session / f"{n}.log").read_bytes() == b
                           for n, b in expected.items()), timeout=60)
    inside = container_files(d.name)
    assert {n: inside[f"{n}.log"] for n in expected} == expected
    code, out = stop_with(proc, SIGTERM)
    assert code == 143, out
    for name, data in expected.items():
        assert (session / f"{name}.log").read_bytes() == data


@pytest.mark.parametrize("sig,code", [(SIGINT, 130), (SIGTERM, 143)])
def test_signal_while_streaming(deploy, sig: int, code: int) -> None:  # type: ignore[no-untyped-def]
    d = deploy({"alpha": ticker("alpha"), "beta": ticker("beta", "0.01")})
    proc = d.start()
    d.wait_out_log("Loon is up")
    time.sleep(1)
    rc, out = stop_with(proc, sig)
    assert rc == code, out
    assert "stopping, press Ctrl+C again to force" in out
    assert containers_named(d.name) == []
    session = d.session()
    log = (session / "out.log").read_text()
    assert f"received {signal.Signals(sig).name}" in log and "removed container" in log, log
    for secret in ("user_pass", "root_pass", "minioadmin"):  # from tests.conftest.base_config
        assert secret not in out
        assert not [p.name for p in session.iterdir() if secret in p.read_text(errors="replace")]
    for name in ("alpha", "beta"):
        text = (session / f"{name}.log").read_text()
        lines = text.splitlines()
        assert text.endswith(f"bye {name}\n"), text[-200:]
        numbers = [int(x.split()[1]) for x in lines[:-1]]
        assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) > 10
    assert no_leftover_processes(d)


def test_signal_during_build_leaves_nothing(deploy) -> None:  # type: ignore[no-untyped-def]
    d = deploy({"alpha": ticker("alpha")}, build_step="sleep 60")
    before = len(containers_named(""))  # every container on the engine
    proc = d.start()
    d.wait_out_log("RUN sleep 60")
    time.sleep(0.5)
    started = time.monotonic()
    rc, out = stop_with(proc, SIGINT)
    assert rc == 130, out
    assert time.monotonic() - started < 15
    assert containers_named(d.name) == []
    wait_until(lambda: len(containers_named("")) <= before, timeout=20)
    assert no_leftover_processes(d)


def test_signal_during_start_leaves_nothing(deploy) -> None:  # type: ignore[no-untyped-def]
    d = deploy({"alpha": ticker("alpha")})
    proc = d.start(LOON_TEST_DELAY_STARTING="3")
    d.wait_out_log(f"built loon-test:{d.name}")
    rc, out = stop_with(proc, SIGTERM)
    assert rc == 143, out
    assert containers_named(d.name) == []


def test_second_signal_forces(deploy) -> None:  # type: ignore[no-untyped-def]
    stubborn = "trap '' TERM; while :; do echo still here; sleep 0.1; done"
    d = deploy({"stubborn": stubborn}, stop_timeout=60)
    proc = d.start()
    d.wait_out_log("Loon is up")
    proc.send_signal(SIGINT)
    d.wait_out_log("stopping the container")
    time.sleep(0.5)
    started = time.monotonic()
    rc, out = stop_with(proc, SIGINT, timeout=30)
    assert rc == 130, out
    assert time.monotonic() - started < 15
    assert "forcing" in out
    assert containers_named(d.name) == []


STATUS = ("for s in alpha beta; do if [ -e /tmp/$s.dead ]; then echo \"$s EXITED exit 1\"; "
          "else echo \"$s RUNNING pid 1\"; fi; done\n")


def test_service_death_is_reported(deploy) -> None:  # type: ignore[no-untyped-def]
    dies = ("for i in $(seq 1 30); do echo \"alpha line $i\"; done; sleep 3; "
            "touch /tmp/alpha.dead; exit 1")
    d = deploy({"alpha": dies, "beta": ticker("beta")}, status_command="sh /app/status.sh",
               extra_files={"status.sh": STATUS})
    result = d.run(timeout=90)
    assert result.returncode == 1, result.stdout
    assert "service alpha is EXITED" in result.stdout
    assert "alpha line 30" in result.stdout and "alpha line 11" in result.stdout
    assert "alpha line 10\n" not in result.stdout.replace("alpha line 10 ", "")
    assert containers_named(d.name) == []


def test_container_exit_is_reported(deploy) -> None:  # type: ignore[no-untyped-def]
    d = deploy({"alpha": ticker("alpha")}, main="echo main says goodbye; sleep 3; exit 3")
    result = d.run(timeout=90)
    assert result.returncode == 1, result.stdout
    assert "exited on its own with code 3" in result.stdout
    assert "main says goodbye" in result.stdout
    assert containers_named(d.name) == []


def test_down_is_idempotent_and_needs_no_config(deploy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    d = deploy({"alpha": ticker("alpha")})
    first = d.run("-D")
    assert first.returncode == 0 and "nothing to stop" in first.stdout
    d.config.write_text("{ not json")
    again = d.run("-D")
    assert again.returncode == 0 and "Traceback" not in again.stdout + again.stderr


def test_name_conflict_is_refused(deploy) -> None:  # type: ignore[no-untyped-def]
    d = deploy({"alpha": ticker("alpha")})
    proc = d.start()
    d.wait_out_log("Loon is up")
    second = d.run(timeout=60)
    assert second.returncode == 1
    assert "already exists" in second.stderr + second.stdout
    assert "-D" in second.stdout and "--replace" in second.stdout
    assert len(containers_named(d.name)) == 1  # the running deployment was not touched
    rc, _ = stop_with(proc, SIGINT)
    assert rc == 130


def test_missing_label_is_a_clear_error(deploy) -> None:  # type: ignore[no-untyped-def]
    d = deploy({"alpha": ticker("alpha")}, labels=False)
    result = d.run()
    assert result.returncode == 1
    assert re.search(r"image loon-test:\S+ has no 'org.loon.services' label", result.stdout)
    assert "Traceback" not in result.stdout + result.stderr


def test_failing_build_step_is_reported(deploy) -> None:  # type: ignore[no-untyped-def]
    d = deploy({"alpha": ticker("alpha")}, build_step="echo about to fail && exit 7")
    result = d.run()
    assert result.returncode == 1
    assert re.search(r"build failed at Step \d+/\d+ : RUN echo about to fail", result.stdout)
    assert "returned a non-zero code: 7" in result.stdout
    assert containers_named(d.name) == []
    out_log = (d.session() / "out.log").read_text()
    assert "about to fail" in out_log


def test_verbose_prefixes_terminal_lines_but_files_stay_clean(deploy) -> None:  # type: ignore[no-untyped-def]
    d = deploy({"alpha": ticker("alpha"), "b": ticker("b")})
    proc = d.start("-v")
    d.wait_out_log("Loon is up")
    session = d.session()
    wait_until(lambda: (session / "alpha.log").read_text().count("\n") > 5, timeout=20)
    rc, out = stop_with(proc, SIGINT)
    assert rc == 130
    assert "Step 1/" in out  # the build, live
    # names are padded to the widest one ("container", the container's own output)
    assert "alpha     | alpha 1\n" in out and "b         | b 1\n" in out
    assert (session / "alpha.log").read_text().startswith("alpha 1\nalpha 2\n")
    assert "\x1b[" not in out  # no colour off a TTY
