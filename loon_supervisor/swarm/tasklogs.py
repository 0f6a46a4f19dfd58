"""Following every task's service files into ``<service>.<slot>.log`` on this host.

A watcher lists the deployment's tasks every second; each new task whose container is on
this engine gets one follower per program it runs. A follower copies the in-container file
from byte 0 (a new task writes a new file), re-attaches at the byte it has while the
container runs, and once the container has stopped copies what is left from the stopped
container, so a killed task's file is complete too.

Resume (a background logger killed, then ``loon attach``): a task's host file is written by
its follower only, in the order of the in-container file, so the file's size *is* the
follower's position: the next follower of that task starts there, and nothing is lost or
written twice whatever the moment of the kill. Which file belongs to which task is recorded
in ``<session>/swarm-tasks.json`` (written atomically before a follower writes a byte), so
the next follower finds the same file even for a replacement task.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from anyio.abc import TaskGroup

from loon_supervisor.atomic import write_text_atomic
from loon_supervisor.engine.base import Engine
from loon_supervisor.engine.records import NodeInfo, TaskInfo, node_labels
from loon_supervisor.engine.swarm import roles, service_name
from loon_supervisor.errors import EngineError

WATCH_INTERVAL = 1.0
# Task followers hand every exec frame on at once, where a container's followers coalesce
# for 15 ms (engine/exec/frames.py): a swarm has a follower per task, not dozens per
# container, and its operators compare it with `docker service logs -f` line for line
# (BENCHMARKS.md). Bulk output is read on at once either way.
TASK_COALESCE = 0.0
RECORD = "swarm-tasks.json"


@dataclass
class TaskLogs:
    engine: Engine
    name: str
    role_programs: dict[str, tuple[str, ...]]
    log_dir: str
    session: Path
    say: Callable[[str], None]
    node_id: str
    node_engines: dict[str, Engine] = field(default_factory=dict)  # other nodes, by ID
    followed: set[str] = field(default_factory=set)
    slots_seen: set[tuple[str, int]] = field(default_factory=set)
    remote_said: bool = False
    files: dict[str, Path] = field(default_factory=dict)
    node_states: dict[str, str] = field(default_factory=dict)  # node ID -> Status.State
    first_round: anyio.Event = field(default_factory=anyio.Event)  # every task seen once

    def file_for(self, role: str, slot: int, task_id: str, program: str) -> Path:
        recorded = self.files.get(f"{task_id}/{program}")
        if recorded is not None:
            return recorded
        first = (role, slot) not in self.slots_seen
        suffix = f"{slot}" if first else f"{slot}.{task_id[:8]}"
        return self.session / f"{program}.{suffix}.log"

    def load_record(self) -> None:
        """The task -> file map an earlier follower of this session wrote, if any."""
        try:
            data = json.loads((self.session / RECORD).read_text())
            files = {str(k): self.session / Path(str(v)).name
                     for k, v in data.get("files", {}).items()}
            slots = {(str(r), int(n)) for r, n in data.get("slots", [])}
        except (OSError, ValueError, TypeError, AttributeError):
            return
        self.files.update(files)
        self.slots_seen.update(slots)

    def save_record(self) -> None:
        data = {"files": {k: p.name for k, p in sorted(self.files.items())},
                "slots": sorted([r, n] for r, n in self.slots_seen)}
        write_text_atomic(self.session / RECORD, json.dumps(data, indent=1) + "\n")


async def follow_program(engine: Engine, cid: str, path: str, target: Path,
                         mark: str) -> None:
    """Copy one in-container file to ``target`` until its container is gone; complete.
    Starts at the byte ``target`` already has (see the module's docstring on resume).
    An engine that stops answering (its node went down) ends the copy at the last byte
    read: nothing more can be read, and the run goes on."""
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        await _copy(engine, cid, path, fd, mark, os.fstat(fd).st_size)
    except EngineError:
        pass
    finally:
        os.close(fd)


async def _copy(engine: Engine, cid: str, path: str, fd: int, mark: str, written: int
                ) -> None:
    """From byte ``written``, re-attaching while the container runs, then the rest once it
    stopped."""
    gnu = await engine.gnu_tail_path(cid)
    while True:
        try:
            async with engine.open_followed_file(
                    cid, path, written, gnu, mark, lambda _n: None,
                    coalesce=TASK_COALESCE) as followed:
                while (data := await followed.receive()) is not None:
                    os.write(fd, data)
                    written += len(data)
        except EngineError:
            pass
        info = None
        try:
            info = await engine.inspect(cid)
        except EngineError:
            pass
        if info and info.running:
            await anyio.sleep(0.2)
            continue
        break
    with anyio.CancelScope(shield=True), anyio.move_on_after(30):
        async for chunk in engine.stream_file(cid, path, written):
            os.write(fd, chunk)
            written += len(chunk)


def note_nodes(t: TaskLogs, nodes: list[NodeInfo]) -> None:
    """Say when a node goes (ready -> down, ...) or comes back, once per change: out.log's
    timestamp is when the manager noticed. Swarm reschedules a gone node's tasks; their
    new containers get new followers and new files."""
    labels = node_labels(nodes)
    for node in nodes:
        before = t.node_states.get(node.id)
        t.node_states[node.id] = node.state
        if before is None or before == node.state:
            continue
        name = labels[node.id]
        if node.state == "ready":
            t.say(f"node {name} is back (was {before})")
        else:
            t.say(f"node {name} is {node.state} (was {before}): Swarm moves its tasks to the "
                  "nodes left; files of tasks that ran there end at their last byte read")


async def watch_tasks(t: TaskLogs, tg: TaskGroup) -> None:
    """Start followers for new local tasks, forever (cancel to stop)."""
    while True:
        try:
            note_nodes(t, await t.engine.swarm.nodes())
        except EngineError:
            pass
        for role, programs in t.role_programs.items():
            try:
                found = await t.engine.swarm.tasks(service_name(t.name, role))
            except EngineError:
                continue
            for task in sorted(found, key=lambda x: x.created_at):
                start_followers(t, tg, role, programs, task)
        t.first_round.set()
        await anyio.sleep(WATCH_INTERVAL)


def start_followers(t: TaskLogs, tg: TaskGroup, role: str, programs: tuple[str, ...],
                    task: TaskInfo) -> None:
    task_id = task.id
    cid = task.container_id
    if task_id in t.followed or not cid:
        return
    engine = t.engine if task.node_id == t.node_id else t.node_engines.get(task.node_id)
    if engine is None:
        if not t.remote_said:
            t.remote_said = True
            t.say("some tasks run on other nodes: their logs are not followed from here "
                  "(exec reaches only this engine's containers; name those nodes' engines "
                  "in deploymentSettings.swarmNodeEngines)")
        t.followed.add(task_id)
        return
    t.followed.add(task_id)
    slot = task.slot or 0
    targets = {program: t.file_for(role, slot, task_id, program) for program in programs}
    resumed = {p: target.stat().st_size for p, target in targets.items() if target.exists()}
    t.files.update({f"{task_id}/{p}": target for p, target in targets.items()})
    t.slots_seen.add((role, slot))
    t.save_record()  # before a byte is written: the next follower finds the same files
    for program, target in targets.items():
        tg.start_soon(follow_program, engine, cid, f"{t.log_dir}/{program}.log", target,
                      f"{t.name}/{task_id[:12]}/{program}")
    where = "this node" if engine is t.engine else f"node {task.node_id[:12]}"
    how = ("resuming" if resumed else "following")
    at = ("" if not resumed else " at " + ", ".join(
        f"{targets[p].name} byte {n}" for p, n in sorted(resumed.items())))
    t.say(f"{how} task {role}.{slot} ({task_id[:12]}) on {where}: {', '.join(programs)}{at}")


def new_task_logs(engine: Engine, name: str, services: tuple[str, ...],
                  log_dir: str, session: Path, say: Callable[[str], None],
                  node_id: str, node_engines: dict[str, Engine] | None = None) -> TaskLogs:
    """With what an earlier follower of this session recorded, so its files continue."""
    logs = TaskLogs(engine, name, roles(services), log_dir, session, say, node_id,
                    dict(node_engines or {}))
    logs.load_record()
    return logs
