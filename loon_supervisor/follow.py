"""Following a running container: one task per service stream, the container's own output,
watchers for its exit and its services' states, and the streams' teardown.

Every stream resumes at the byte it had received when it breaks while the container still
runs, and waits out an engine restart. After the container stops, the bytes the followers
had not read yet are collected from the stopped container, so every file is complete.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiodocker
import anyio
from anyio.abc import TaskStatus

from loon_supervisor.crashloop import CrashLoopPolicy, CrashLoopWatch
from loon_supervisor.engine import containers, exec_streams, images
from loon_supervisor.errors import EngineError, LoonError
from loon_supervisor.logs.multiplexer import StreamCopy, open_copy
from loon_supervisor.logs.terminal import Printer
from loon_supervisor.run import Run

STATUS_INTERVAL = 2.0
FAILED_STATES = ("FATAL", "EXITED")
DRAIN_GRACE = 10.0


@dataclass
class Streaming:
    docker: aiodocker.Docker
    cid: str
    contract: images.ImageContract
    session: Path
    stop_timeout: int
    printer: Printer | None
    copies: dict[str, StreamCopy] = field(default_factory=dict)
    stopping: bool = False
    engine_lost: bool = False
    crash_policy: CrashLoopPolicy = field(default_factory=CrashLoopPolicy)


async def follow_service(s: Streaming, run: Run, name: str, gnu: bool,
                         *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
    """Copy one service's file; re-attach at the right byte if the stream ends early."""
    copy = s.copies[name]
    path = f"{s.contract.log_dir}/{name}.log"
    started = False
    attempt = 0

    def on_stderr(data: bytes) -> None:
        text = data.decode(errors="replace").strip()
        if text and "has appeared" not in text and "cannot open" not in text:
            run.say.log_only(f"{name} follower: {text}")

    async with open_copy(copy):
        while True:
            try:
                async with exec_streams.open_followed_file(
                        s.docker, s.cid, path, copy.received, gnu, on_stderr) as followed:
                    if not started:
                        started = True
                        task_status.started()
                    elif attempt:
                        run.say(f"{name}: log stream re-attached at byte {copy.received}")
                    attempt = 0
                    while (data := await followed.receive()) is not None:
                        copy.feed(data)
            except EngineError as exc:
                if not started:
                    raise
                run.say(f"{name}: log stream broke ({exc})", terminal=False)
            if s.stopping or not await container_running(s, run):
                return
            attempt += 1
            delay = min(0.1 * 2 ** attempt, 5.0)
            run.say(f"{name}: log stream ended while the container runs; re-attaching at "
                    f"byte {copy.received} in {delay:.1f}s")
            await anyio.sleep(delay)


async def wait_for_engine(s: Streaming, run: Run, limit: float = 600) -> bool:
    """After the engine went away: wait (with backoff) until it answers again."""
    delay = 0.2
    with anyio.move_on_after(limit):
        while True:
            try:
                await s.docker.version()
                return True
            except Exception:
                await anyio.sleep(delay)
                delay = min(delay * 2, 5.0)
    return False


async def container_running(s: Streaming, run: Run) -> bool:
    while True:
        try:
            info = await containers.inspect(s.docker, s.cid)
            return bool(info and info.get("State", {}).get("Running"))
        except EngineError:
            if not s.engine_lost:
                s.engine_lost = True
                run.say("the Docker engine went away; waiting for it to come back")
            if not await wait_for_engine(s, run):
                return False
            if s.engine_lost:
                s.engine_lost = False
                run.say("the Docker engine is back")


async def follow_container(s: Streaming, run: Run) -> None:
    """The container's own output; on a break, resumes from the last second seen (the
    engine's ``since`` has one-second precision, so a few lines may repeat there)."""
    copy = s.copies["container"]
    since = 0
    async with open_copy(copy):
        while True:
            source = exec_streams.container_output(s.docker, s.cid, since)
            try:
                async for data in source:
                    copy.feed(data)
                    since = int(time.time())
            except EngineError:
                pass
            finally:
                with anyio.CancelScope(shield=True):
                    await source.aclose()
            if s.stopping or not await container_running(s, run):
                return
            await anyio.sleep(0.5)


async def monitor_status(s: Streaming, run: Run, stop: anyio.CancelScope) -> None:
    """Poll the image's status command; report state changes; stop on FATAL/EXITED."""
    if not s.contract.status_command:
        await anyio.sleep_forever()
    seen: dict[str, str] = {}
    loops = CrashLoopWatch(s.session, run.say, last_lines, s.crash_policy)
    while True:
        await anyio.sleep(STATUS_INTERVAL)
        try:
            _, out = await exec_streams.run_capture(
                s.docker, s.cid, ["sh", "-c", s.contract.status_command])
        except LoonError:
            continue
        for line in out.decode(errors="replace").splitlines():
            parts = line.split()
            if len(parts) < 2 or parts[0] not in s.contract.services:
                continue
            name, state = parts[0], parts[1]
            loops.observe(name, line)
            if seen.get(name) != state:
                seen[name] = state
                run.say(f"{name}: {state}")
            if state in FAILED_STATES:
                run.failure = f"service {name} is {state}"
                run.say(f"service {name} reached {state}")
                stop.cancel()
                return


async def wait_container(s: Streaming, run: Run, stop: anyio.CancelScope) -> None:
    while True:
        try:
            code = await containers.wait_exit(s.docker, s.cid)
            break
        except EngineError:
            if await container_running(s, run):
                continue
            info = None
            with contextlib.suppress(EngineError):
                info = await containers.inspect(s.docker, s.cid)
            if info is None:
                run.failure = "the container is gone (the Docker engine lost it)"
                run.say(run.failure)
                stop.cancel()
                return
            code = int(info.get("State", {}).get("ExitCode", -1))
            break
    if run.stop_signal is None and run.failure is None:
        run.failure = f"the container exited on its own with code {code}"
        run.say(run.failure)
    stop.cancel()


async def wait_stop(run: Run, stop: anyio.CancelScope) -> None:
    await run.stop_requested.wait()
    stop.cancel()


async def stop_container(s: Streaming, run: Run) -> None:
    """Graceful stop bounded by the timeout; a second signal kills at once."""
    async with anyio.create_task_group() as tg:
        async def graceful() -> None:
            await containers.stop(s.docker, s.cid, s.stop_timeout)
            tg.cancel_scope.cancel()

        async def forced() -> None:
            await run.force.wait()
            await containers.kill(s.docker, s.cid)
            tg.cancel_scope.cancel()

        tg.start_soon(graceful)
        tg.start_soon(forced)


async def collect_tails(s: Streaming, run: Run) -> None:
    """Append what the followers could not read before the container stopped."""
    files = await exec_streams.read_files(s.docker, s.cid, s.contract.log_dir)
    for name in s.contract.services:
        data = files.get(f"{name}.log")
        copy = s.copies[name]
        if data is not None and len(data) > copy.written:
            rest = data[copy.written:]
            with open(copy.path, "ab") as fh:
                fh.write(rest)
            copy.written += len(rest)
            if copy.on_lines is not None:
                copy.on_lines(name, rest)
            run.say.log_only(f"{name}: collected {len(rest)} final bytes after the stop")


def last_lines(path: Path, n: int = 20) -> list[str]:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read()
    except OSError:
        return []
    return data.decode(errors="replace").splitlines()[-n:]


async def stream_until_done(s: Streaming, run: Run,
                            on_attached: anyio.Event | None = None) -> None:
    """Follow every stream until a stop, a crash or a signal; then tear down the streams."""
    gnu = await exec_streams.has_gnu_tail(s.docker, s.cid)
    if not gnu:
        run.say.log_only("image has no GNU tail: following by polling once a second")
    for name in s.contract.services:
        s.copies[name] = StreamCopy(name, s.session / f"{name}.log",
                                    s.printer.lines if s.printer else None)
    s.copies["container"] = StreamCopy("container", s.session / "container.log",
                                       s.printer.lines if s.printer else None)
    async with anyio.create_task_group() as streams:
        for name in s.contract.services:
            await streams.start(follow_service, s, run, name, gnu)
        streams.start_soon(follow_container, s, run)
        run.say(f"following {len(s.contract.services)} services: "
                f"{', '.join(s.contract.services)}")
        if on_attached is not None:
            on_attached.set()
        async with anyio.create_task_group() as watch:
            watch.start_soon(wait_container, s, run, watch.cancel_scope)
            watch.start_soon(monitor_status, s, run, watch.cancel_scope)
            watch.start_soon(wait_stop, run, watch.cancel_scope)
        with anyio.CancelScope(shield=True):
            s.stopping = True
            run.say("stopping the container", terminal=run.stop_signal is not None)
            await stop_container(s, run)
            # Followers end at EOF once the container is down; bound the wait.
            streams.cancel_scope.deadline = anyio.current_time() + DRAIN_GRACE
    with anyio.CancelScope(shield=True):
        await collect_tails(s, run)
