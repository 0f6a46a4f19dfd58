"""The deploy record follows the phases the `loon up -d --replace` child says."""

from __future__ import annotations

from pathlib import Path

from loon_supervisor.deploy.runner import DeployContext


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
