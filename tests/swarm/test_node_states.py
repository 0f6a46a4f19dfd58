"""What out.log says when a swarm node goes or comes back (engine-free)."""

from __future__ import annotations

from pathlib import Path

from loon_supervisor.engine.records import NodeInfo
from loon_supervisor.swarm.tasklogs import TaskLogs, note_nodes


def _logs(said: list[str]) -> TaskLogs:
    return TaskLogs(engine=None, name="x", role_programs={}, log_dir="/var/log/loon",  # type: ignore[arg-type]
                    session=Path("/nonexistent"), say=said.append, node_id="m")


def test_a_node_going_and_coming_back_is_said_once_each() -> None:
    said: list[str] = []
    t = _logs(said)
    manager = NodeInfo("m" * 25, "vm", "127.0.0.1", "ready")
    worker = NodeInfo("w" * 25, "vm", "127.0.0.1", "ready")
    note_nodes(t, [manager, worker])
    note_nodes(t, [manager, worker])
    assert said == []  # the first sight is no change
    down = NodeInfo(worker.id, "vm", "127.0.0.1", "down")
    note_nodes(t, [manager, down])
    note_nodes(t, [manager, down])
    note_nodes(t, [manager, worker])
    assert said == [
        f"node vm ({'w' * 12}) is down (was ready): Swarm moves its tasks to the nodes left; "
        "files of tasks that ran there end at their last byte read",
        f"node vm ({'w' * 12}) is back (was down)"]


def test_a_node_is_named_by_its_hostname_when_that_is_unique() -> None:
    said: list[str] = []
    t = _logs(said)
    note_nodes(t, [NodeInfo("a", "lab-1", state="ready"), NodeInfo("b", "lab-2", state="ready")])
    note_nodes(t, [NodeInfo("a", "lab-1", state="ready"), NodeInfo("b", "lab-2", state="unknown")])
    assert said[0].startswith("node lab-2 is unknown (was ready)")
