"""Ctrl+C typed in a real terminal (a pty: SIGINT to the whole foreground process group, as
an operator's key press) on a foreground run whose services stop at once, on both log
sources (issue 23, defect 5: on the host-directory fast path every teardown waited out the
10 s drain grace, SIGINT -> exit took ~11 s).

Timing rule of this project: no timed assertions in tests; the figure itself (<= 2 s, as a
ratio against the code before issue 23 measured in the same run) is in bench/drain.py and
BENCHMARKS.md. The one bound below is deliberately generous (8 s): it holds on a loaded
2-core machine, and it still fails on the old drain, which alone took 10 s after the stop.
"""

from __future__ import annotations

import sys
import time

import pexpect
import pytest

from tests.conftest import ROOT
from tests.engine_helpers import containers_named, wait_until
from tests.faults.support import assert_consecutive, host_file
from tests.test_up_flow import ticker

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("engine")]

GENEROUS = 8.0  # s; the old drain grace alone was 10 s (see the module's note)
DRAINED = "the log followers read their files to the end"


def test_ctrl_c_typed_in_a_terminal_ends_the_run_without_the_drain_grace(deploy) -> None:  # type: ignore[no-untyped-def]
    d = deploy({"alpha": ticker("alpha", "0.02"), "beta": ticker("beta", "0.05")})
    child = pexpect.spawn(sys.executable, [str(ROOT / "build.py"), "--config-file",
                                           str(d.config)], cwd=str(d.root), env=d.env(),
                          encoding="utf-8", codec_errors="replace", timeout=180,
                          dimensions=(40, 160))
    try:
        child.expect("press Ctrl\\+C to stop")
        wait_until(lambda: b"alpha 20\n" in host_file(d, "alpha"), timeout=30)
        started = time.monotonic()
        child.send("\x03")  # the terminal turns it into SIGINT for the foreground group
        child.expect(pexpect.EOF, timeout=120)
        took = time.monotonic() - started
    finally:
        child.close(force=True)
    said = child.before or ""
    assert child.exitstatus == 130, f"exit {child.exitstatus} {child.signalstatus}: {said}"
    out = (d.session() / "out.log").read_text(errors="replace")
    assert DRAINED in out, out[-3000:]
    assert took < GENEROUS, f"Ctrl+C -> exit took {took:.1f} s:\n{out[-3000:]}"
    for name in ("alpha", "beta"):
        text = host_file(d, name).decode()
        assert text.endswith(f"bye {name}\n")
        assert_consecutive(text, name)
    assert containers_named(d.name) == []
