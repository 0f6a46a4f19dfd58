"""Following every task's service files into ``<service>.<slot>.log`` on this host.

A watcher lists the deployment's tasks every second; each new task whose container is on
this engine gets one follower per program it runs. A follower copies the in-container file
from byte 0 (a new task writes a new file), re-attaches at the byte it has while the
container runs, and once the container has stopped copies what is left from the stopped
container, so a killed task's file is complete too.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from anyio.abc import TaskGroup

from loon_supervisor.engine.base import Engine
from loon_supervisor.engine.records import NodeInfo, TaskInfo, node_labels
from loon_supervisor.engine.swarm import roles, service_name
from loon_supervisor.errors import EngineError

WATCH_INTERVAL = 1.0


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

    def file_for(self, role: str, slot: int, task_id: str, program: str) -> Path:
        first = (role, slot) not in self.slots_seen
        suffix = f"{slot}" if first else f"{slot}.{task_id[:8]}"
        return self.session / f"{program}.{suffix}.log"


async def follow_program(engine: Engine, cid: str, path: str, target: Path,
                         mark: str) -> None:
    """Copy one in-container file to ``target`` until its container is gone; complete.
    An engine that stops answering (its node went down) ends the copy at the last byte
    read: nothing more can be read, and the run goes on."""
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        await _copy(engine, cid, path, fd, mark)
    except EngineError:
        pass
    finally:
        os.close(fd)


async def _copy(engine: Engine, cid: str, path: str, fd: int, mark: str) -> None:
    """From byte 0, re-attaching while the container runs, then the rest once it stopped."""
    written = 0
    gnu = await engine.gnu_tail_path(cid)
    while True:
        try:
            async with engine.open_followed_file(
                    cid, path, written, gnu, mark, lambda _n: None) as followed:
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
    for program in programs:
        target = t.file_for(role, slot, task_id, program)
        t.files[f"{task_id}/{program}"] = target
        tg.start_soon(follow_program, engine, cid, f"{t.log_dir}/{program}.log", target,
                      f"{t.name}/{task_id[:12]}/{program}")
    t.slots_seen.add((role, slot))
    where = "this node" if engine is t.engine else f"node {task.node_id[:12]}"
    t.say(f"following task {role}.{slot} ({task_id[:12]}) on {where}: {', '.join(programs)}")


def new_task_logs(engine: Engine, name: str, services: tuple[str, ...],
                  log_dir: str, session: Path, say: Callable[[str], None],
                  node_id: str, node_engines: dict[str, Engine] | None = None) -> TaskLogs:
    return TaskLogs(engine, name, roles(services), log_dir, session, say, node_id,
                    dict(node_engines or {}))
