"""Host log retention through a real `up -d` on the engine: the start of a session prunes
and compresses the old ones, and `loon status` shows (and warns about) the usage."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest

from loon_supervisor.sinks.retention import sessions
from tests.engine_helpers import wait_until
from tests.test_up_flow import ticker

pytestmark = [pytest.mark.usefixtures("engine"), pytest.mark.engine]
MiB = 1 << 20


def test_up_prunes_and_compresses_old_sessions_at_start(deploy) -> None:  # type: ignore[no-untyped-def]
    d = deploy({"alpha": ticker("alpha")})
    logs = d.logs
    old = []
    for i in range(5):
        s = logs / f"logs_2026-01-0{i + 1}_10-00-00"
        s.mkdir(parents=True)
        (s / "out.log").write_text(f"old run {i}\n")
        (s / "alpha.log").write_bytes(b"alpha line\n" * 1000)
        old.append(s)
    # 13 MiB that gzip cannot shrink, in a session that is kept: 80 % of the 16 MiB limit
    (old[-1] / "big.log").write_bytes(os.urandom(13 * MiB))
    config = json.loads(d.config.read_text())
    config["deploymentSettings"].update(logSessionsKept=3, logMaxMegabytes=16)
    d.config.write_text(json.dumps(config))

    up = d.run("-d", timeout=180)
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        current = d.session()
        # 6 sessions, 3 kept: the 3 oldest went; the newest old one with service logs stays
        # as it is (`loon logs` falls back to it), the other is gzipped, the current not
        assert sessions(logs) == [old[3], old[4], current]
        for s in old[:3]:
            assert not s.exists()
        assert not list(old[3].glob("*.log")), sorted(old[3].iterdir())
        assert gzip.decompress((old[3] / "alpha.log.gz").read_bytes()) == b"alpha line\n" * 1000
        assert (old[4] / "alpha.log").read_bytes() == b"alpha line\n" * 1000
        assert (current / "out.log").exists() and not list(current.glob("*.gz"))
        out = (current / "out.log").read_text()
        assert "log retention: compressed 2 file(s), pruned 3 old session(s)" in out

        status = d.loon("status", "--config-file", str(d.config))
        text = status.stdout
        assert "host logs" in text and "of 16.0 MiB" in text, text
        assert "WARNING: host logs use 8" in text, text  # 13 MiB and more of 16
        assert status.returncode == 0, text  # a warning, not an unhealthy deployment
    finally:
        down = d.run("-D", timeout=120)
        assert down.returncode == 0, down.stdout + down.stderr
    # the finished session is an old one for the next start
    assert Path(current).is_dir()


def test_background_logger_keeps_the_staging_copy_to_two_files_a_service(deploy) -> None:  # type: ignore[no-untyped-def]
    """Fast path: the service rotates as supervisord does (.2 -> .3, .1 -> .2, then the
    live file -> .1) three times; the logger deletes the older rotated files from the
    staging dir and the session file still holds every line once."""
    log = "/var/log/loon/rot.log"
    rotate = (f"[ -e {log}.2 ] && mv {log}.2 {log}.3; [ -e {log}.1 ] && mv {log}.1 {log}.2; "
              f"mv {log} {log}.1")
    script = (f"sleep 2; i=0; while [ $i -lt 600 ]; do i=$((i+1)); echo \"rot $i\" >> {log}; "
              f"usleep 2000; if [ $((i % 150)) = 0 ] && [ $i -lt 600 ]; then {rotate}; fi; done; "
              "touch /tmp/done; exec sleep 100000")
    d = deploy({"rot": script})
    config = json.loads(d.config.read_text())
    config["deploymentSettings"]["logSource"] = "hostdir"
    d.config.write_text(json.dumps(config))
    up = d.run("-d", timeout=180)
    assert up.returncode == 0, up.stdout + up.stderr
    staging = d.project / ".build-files" / "service-logs" / d.name
    try:
        session = d.session()
        wait_until(lambda: (session / "rot.log").exists() and
                   (session / "rot.log").read_bytes().endswith(b"rot 600\n"), timeout=60)
        wait_until(lambda: sorted(p.name for p in staging.iterdir()) == ["rot.log",
                                                                         "rot.log.1"],
                   timeout=30)
        lines = (session / "rot.log").read_text().splitlines()
        assert lines == [f"rot {i}" for i in range(1, 601)]
    finally:
        down = d.run("-D", timeout=120)
        assert down.returncode == 0, down.stdout + down.stderr


def test_staging_over_its_share_keeps_only_what_is_unread(deploy) -> None:  # type: ignore[no-untyped-def]
    """logMaxMegabytes 16: the staging copy's share is 4 MiB. The service writes 3 MB
    generations and rotates three times (12 MB in all): once the logger has read a rotated
    file, even rot.log.1 goes, since the live file and it would exceed the share; the
    session file still holds every line once."""
    log = "/var/log/loon/rot.log"
    rotate = (f"[ -e {log}.2 ] && mv {log}.2 {log}.3; [ -e {log}.1 ] && mv {log}.1 {log}.2; "
              f"mv {log} {log}.1")
    script = ("sleep 2; pad=$(head -c 20000 /dev/zero | tr '\\0' x); i=0; "
              f"while [ $i -lt 600 ]; do i=$((i+1)); echo \"rot $i $pad\" >> {log}; "
              f"usleep 2000; if [ $((i % 150)) = 0 ] && [ $i -lt 600 ]; then {rotate}; fi; "
              "done; exec sleep 100000")
    d = deploy({"rot": script})
    config = json.loads(d.config.read_text())
    config["deploymentSettings"].update(logSource="hostdir", logMaxMegabytes=16)
    d.config.write_text(json.dumps(config))
    up = d.run("-d", timeout=180)
    assert up.returncode == 0, up.stdout + up.stderr
    staging = d.project / ".build-files" / "service-logs" / d.name
    try:
        session = d.session()
        wait_until(lambda: (session / "rot.log").exists() and
                   (session / "rot.log").read_bytes().endswith(b"x\n") and
                   b"rot 600 " in (session / "rot.log").read_bytes()[-30000:], timeout=90)
        try:
            wait_until(lambda: sorted(p.name for p in staging.iterdir()) == ["rot.log"],
                       timeout=30)
        except AssertionError:
            state = (d.project / ".build-files" / f"state.{d.name}.json").read_text()
            raise AssertionError([(p.name, p.stat().st_size, p.stat().st_ino)
                                  for p in staging.iterdir()], state) from None
        assert (staging / "rot.log").stat().st_size > 3_000_000
        got = [line.split(" ", 2)[:2] for line in
               (session / "rot.log").read_text().splitlines()]
        assert got == [["rot", str(i)] for i in range(1, 601)]
        status = d.loon("status", "-c", str(d.config), "--name", d.name)
        said = " ".join(status.stdout.split())
        assert "staging copy 2.9 MiB of 4.0 MiB" in said, status.stdout
    finally:
        down = d.run("-D", timeout=120)
        assert down.returncode == 0, down.stdout + down.stderr
