"""The deploy record follows the phases the `loon up -d --replace` child says; a cancel
after the swap lets that child roll back."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from loon_supervisor.deploy.runner import DeployContext, supervisor_deploy_step


def test_child_lines_set_the_phase_and_the_rollback_reason(tmp_path: Path) -> None:
    logged: list[str] = []
    seen: list[str] = []
    health: list[str] = []
    ctx = DeployContext("id", tmp_path, tmp_path / "config.json", tmp_path, None,
                        logged.append, on_phase=seen.append, on_health=health.append)
    ctx.set_phase("building")
    for line in ["building version loon:latest-20261204T150102Z-1a2b3c4 from /x",
                 "phase: backing up", "phase: swapping", "phase: checking health",
                 "health gate failed after 31.0 s: server process state: server FATAL",
                 "rolling back from loon:latest-20261204T150102Z-1a2b3c4 to "
                 "loon:latest-20261204T140000Z-0000000: health gate failed after 31.0 s: "
                 "server process state: server FATAL Exited too quickly",
                 "phase: rolled back"]:
        ctx.child_line(line)
    assert seen == ["building", "backing up", "swapping", "checking health", "rolled back"]
    assert ctx.phase == "rolled back"
    assert ctx.rolled_back == ("health gate failed after 31.0 s: server process state: "
                               "server FATAL Exited too quickly")
    assert health == ["health gate failed after 31.0 s: server process state: server FATAL"]
    assert "phase: building" in logged and logged[-1] == "phase: rolled back"


# A stand-in for the `loon` child: `up` says it reached the gate, and on SIGTERM rolls back
# (taking longer than the kill grace); every call is noted in FAKE_CALLS.
FAKE_LOON = '''import os, signal, sys, time
with open(os.environ["FAKE_CALLS"], "a") as calls:
    calls.write(" ".join(sys.argv[1:]) + "\\n")
if sys.argv[1] == "up":
    def roll_back(*_):
        print("rolling back from new to old: cancelled (SIGTERM) after the swap", flush=True)
        time.sleep(1.5)
        print("phase: rolled back", flush=True)
        sys.exit(143)
    signal.signal(signal.SIGTERM, roll_back)
    print("phase: swapping", flush=True)
    print("phase: checking health", flush=True)
    time.sleep(60)
'''


@pytest.mark.anyio
async def test_a_cancel_during_the_gate_waits_for_the_rollback_instead_of_down(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "loon_supervisor"
    fake.mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "__main__.py").write_text(FAKE_LOON)
    monkeypatch.chdir(tmp_path)  # `python -m loon_supervisor` finds the stand-in first
    monkeypatch.setenv("FAKE_CALLS", str(tmp_path / "calls"))
    logged: list[str] = []
    ctx = DeployContext("id", tmp_path, tmp_path / "config.json", tmp_path, None,
                        logged.append, kill_grace=0.5, rollback_grace=60)
    with anyio.fail_after(30):
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                async def cancel_in_the_gate() -> None:
                    while ctx.phase != "checking health":
                        await anyio.sleep(0.05)
                    scope.cancel()

                tg.start_soon(cancel_in_the_gate)
                await supervisor_deploy_step(ctx)
    assert scope.cancelled_caught
    assert ctx.phase == "rolled back", logged
    assert ctx.rolled_back == "cancelled (SIGTERM) after the swap"
    assert any(line.startswith("stopped after the swap: rolled back") for line in logged)
    calls = (tmp_path / "calls").read_text().splitlines()
    assert [c.split()[0] for c in calls] == ["up"], calls  # no `loon down` after a rollback
