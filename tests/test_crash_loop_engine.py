"""A service that dies 10 s after every start, restarted for ever while its status line says
RUNNING (as supervisord does past startsecs), is reported as crash-looping: in the terminal,
out.log and `loon status` (exit 1), while the other services keep running."""

from __future__ import annotations

import json

import pytest

from tests.engine_helpers import SIGINT, stop_with, wait_until

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("engine")]

# A supervisor-like restart loop: every run of `server` is a new process living 10 s.
CRASHER = ("while :; do sh -c 'echo \"server start $$\"; sleep 10; echo \"server dies\"; "
           "exit 1' & echo $! > /tmp/server.pid; date +%s > /tmp/server.start; wait $!; "
           "sleep 1; done")
STEADY = ("echo $$ > /tmp/beta.pid; date +%s > /tmp/beta.start; "
          "i=0; while :; do i=$((i+1)); echo \"beta $i\"; sleep 0.2; done")
# Mimics `supervisorctl status`: RUNNING with the current pid and uptime.
STATUS = ("now=$(date +%s); for s in server beta; do p=$(cat /tmp/$s.pid 2>/dev/null) || "
          "continue; u=$((now - $(cat /tmp/$s.start))); "
          "printf '%-8s RUNNING   pid %s, uptime 0:%02d:%02d\\n' $s $p $((u/60)) $((u%60)); "
          "done\n")


def test_crash_loop_is_reported_and_the_rest_stays_up(deploy) -> None:  # type: ignore[no-untyped-def]
    d = deploy({"server": CRASHER, "beta": STEADY}, status_command="sh /app/status.sh",
               extra_files={"status.sh": STATUS})
    cfg = json.loads(d.config.read_text())
    cfg["deploymentSettings"].update(crashLoopRestarts=2, crashLoopWindow=60)
    d.config.write_text(json.dumps(cfg))
    proc = d.start()
    d.wait_out_log("Loon is up")
    before = d.loon("status", "--config-file", str(d.config))
    assert before.returncode == 0, before.stdout + before.stderr
    d.wait_out_log("CRASH LOOP: service server", timeout=60)
    out_log = (d.session() / "out.log").read_text()
    assert "restarted 2 times within 60 s" in out_log
    assert "server dies" in out_log  # its last lines come with the report
    status = d.loon("status", "--config-file", str(d.config))
    assert status.returncode == 1, status.stdout + status.stderr
    assert "crash-looping" in status.stdout
    assert "beta" in status.stdout
    beta = d.session() / "beta.log"
    size = beta.stat().st_size
    wait_until(lambda: beta.stat().st_size > size, timeout=5)  # the others stay up
    assert proc.poll() is None
    code, out = stop_with(proc, SIGINT)
    assert code == 130, out
    assert "CRASH LOOP: service server" in out
