"""Following a running container: one task per service stream, the container's own output,
watchers for its exit and its services' states, and the streams' teardown.

Each service stream keeps a :class:`Cursor`: the inode of the in-container file it reads and
its position in that file, apart from the host file's size. A follower that meets a rotation
notice (rename + reopen, truncation, a missing file), a broken stream, or a new logger after
a crash all resume through :func:`resync`, which reads the rest of ``<svc>.log.1`` first when
the followed file was renamed away, so rotated bytes reach the host file exactly once, in
order. After the container stops, the bytes the followers had not read yet are streamed out
of the stopped container, only from the files that still hold some.

Every in-container follower carries the deployment's mark (``LOON_FOLLOWER=<name>/<svc>``);
a new logger kills followers left by a dead one before it starts its own.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiodocker
import anyio
from anyio.abc import TaskStatus

from loon_supervisor.engine import containers, exec_streams, images
from loon_supervisor.errors import EngineError
from loon_supervisor.lifecycle.control import Run
from loon_supervisor.sinks.files import FileSink
from loon_supervisor.sinks.terminal import Printer
from loon_supervisor.streams.crashloop import CrashLoopPolicy, CrashLoopWatch
from loon_supervisor.streams.stream_copy import StreamCopy, open_copy

STATUS_INTERVAL = 2.0
FAILED_STATES = ("FATAL", "EXITED")
DRAIN_GRACE = 10.0
# How long a teardown step waits for the engine (on top of the stop timeout for the stop).
# LOON_ENGINE_GRACE shortens it for the hung-engine test.
ENGINE_GRACE = float(os.environ.get("LOON_ENGINE_GRACE", "30"))
MISSING_POLL = 0.2


@dataclass
class Cursor:
    """Where a service stream stands inside the in-container file: ``inode`` (None: not
    known yet; the next file seen is read from ``pos``) and the position, kept as a base
    plus the bytes received since."""

    inode: int | None
    base_pos: int
    base_host: int
    pending: str | None = None  # a rotation notice not resolved yet (for the final collection)
    gap_reported: bool = False

    def pos(self, copy: StreamCopy) -> int:
        return self.base_pos + copy.received - self.base_host

    def switch(self, inode: int | None, copy: StreamCopy) -> None:
        """The next bytes come from the start of a new file."""
        self.inode, self.base_pos, self.base_host, self.pending = inode, 0, copy.received, None

    def to_state(self, copy: StreamCopy) -> dict:
        return {"inode": self.inode, "pos": self.pos(copy), "host": copy.received}

    @classmethod
    def from_state(cls, data: dict | None, copy: StreamCopy) -> Cursor:
        """Resume: the host file may hold more (or fewer) bytes than when this was saved."""
        if not data:
            return cls(None, copy.received, copy.received)
        return cls(data.get("inode"), int(data["pos"]), int(data["host"]))


@dataclass
class Streaming:
    docker: aiodocker.Docker
    cid: str
    contract: images.ImageContract
    session: Path
    stop_timeout: int
    printer: Printer | None
    mark: str = "loon"
    terminal: Printer | None = None  # pumped during the follow phase (see logs.terminal)
    persist: Callable[[], None] | None = None  # save positions now (after a file switch)
    saved_cursors: dict[str, dict] = field(default_factory=dict)
    copies: dict[str, StreamCopy] = field(default_factory=dict)
    cursors: dict[str, Cursor] = field(default_factory=dict)
    stopping: bool = False
    engine_lost: bool = False
    crash_policy: CrashLoopPolicy = field(default_factory=CrashLoopPolicy)

    def positions(self) -> dict[str, dict]:
        """The explicit stream positions, for the state file."""
        return {n: c.to_state(self.copies[n]) for n, c in self.cursors.items()}

    def switched(self) -> None:
        """A cursor moved to a new file: save at once, so a crash right after cannot resume
        the new file's bytes at the old file's offset."""
        if self.persist is not None:
            with contextlib.suppress(OSError):
                self.persist()


@contextlib.contextmanager
def bounded(run: Run, doing: str, seconds: float) -> Iterator[anyio.CancelScope]:
    """A shielded teardown step that gives up after ``seconds`` with one clear sentence."""
    with anyio.CancelScope(shield=True) as scope:
        scope.deadline = anyio.current_time() + seconds
        yield scope
    if scope.cancelled_caught:
        msg = (f"the Docker engine did not answer within {seconds:.0f}s while {doing}; the "
               "container may still run: check it with `docker ps` and stop it with "
               "`loon down`")
        if run.failure is None:
            run.failure = msg
        run.teardown_failed = True
        run.say(msg)


async def resync(s: Streaming, run: Run, name: str, cur: Cursor, event: str | None) -> int | None:
    """Decide where to follow ``<svc>.log`` from, reading the rest of ``<svc>.log.1`` first
    when the followed file was renamed away. None: the file is missing right now."""
    copy = s.copies[name]
    path = f"{s.contract.log_dir}/{name}.log"
    old = f"{path}.1"
    stats = await exec_streams.stat_files(s.docker, s.cid, [path, old])
    now, prev = stats.get(path), stats.get(old)
    pos = cur.pos(copy)
    if cur.inode is None:
        if now is None:
            return None
        if pos == 0 and copy.received == 0 and prev is not None and prev[1] > 0 \
                and not cur.gap_reported:
            # A new session meets a file that was already rotated: the older part first.
            await _read_rest(s, run, name, old, 0)
            cur.switch(now[0], copy)
        cur.inode, cur.gap_reported = now[0], False
        s.switched()
        return cur.pos(copy)
    if now is not None and now[0] == cur.inode:
        if event != "truncated" and now[1] >= pos:
            return pos
        recovered = ""
        if prev is not None and prev[0] != cur.inode and prev[1] > pos and \
                await _seam_matches(s, copy, old, pos):
            await _read_rest(s, run, name, old, pos)
            recovered = f"; its bytes after {pos} were read from {old} (copytruncate)"
        run.say(f"{name}: {path} was truncated{recovered}; following it from its start",
                terminal=False)
        cur.switch(now[0], copy)
        s.switched()
        return 0
    if prev is not None and prev[0] == cur.inode:
        if prev[1] > pos:
            await _read_rest(s, run, name, old, pos)
        run.say.log_only(f"{name}: {path} was rotated; read the rest of {old}, following the "
                         "new file from its start")
    elif not cur.gap_reported:
        run.say(f"{name}: {path} was replaced while not followed and its previous file is "
                f"gone; bytes it had after {pos} are missing", terminal=False)
    cur.switch(now[0] if now is not None else None, copy)
    cur.gap_reported = now is None
    s.switched()
    return None if now is None else 0


async def _seam_matches(s: Streaming, copy: StreamCopy, path: str, pos: int) -> bool:
    """Is ``path`` a copy of the file we followed? Its bytes before ``pos`` must be the ones
    we last received."""
    k = min(len(copy.recent), pos)
    if k == 0:
        return True
    data = await exec_streams.read_bytes_at(s.docker, s.cid, path, pos - k, k)
    return data == copy.recent[-k:]


async def _read_rest(s: Streaming, run: Run, name: str, path: str, pos: int) -> None:
    copy = s.copies[name]
    async with exec_streams.open_followed_file(
            s.docker, s.cid, path, pos, None, f"{s.mark}/{name}",
            lambda text: run.say.log_only(f"{name} follower: {text}"), follow=False) as rest:
        while (data := await rest.receive()) is not None:
            copy.feed(data)


async def follow_service(s: Streaming, run: Run, name: str, gnu: str | None,
                         *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
    """Copy one service's file across rotations; re-attach at the right byte if the stream
    ends early."""
    copy = s.copies[name]
    cur = s.cursors[name]
    path = f"{s.contract.log_dir}/{name}.log"
    started = False
    attempt = 0
    event: str | None = None

    def on_notice(text: str) -> None:
        if text:
            run.say.log_only(f"{name} follower: {text}")

    def start() -> None:
        nonlocal started
        if not started:
            started = True
            task_status.started()

    async with open_copy(copy):
        while True:
            try:
                offset = await resync(s, run, name, cur, event)
                event = cur.pending = None
                if offset is None:
                    start()
                    if s.stopping:
                        return
                    await anyio.sleep(MISSING_POLL)
                    continue
                async with exec_streams.open_followed_file(
                        s.docker, s.cid, path, offset, gnu, f"{s.mark}/{name}",
                        on_notice) as followed:
                    start()
                    if attempt:
                        run.say(f"{name}: log stream re-attached at byte {offset}")
                    attempt = 0
                    while (data := await followed.receive()) is not None:
                        copy.feed(data)
                    event = cur.pending = followed.event
                if event is not None and not s.stopping:
                    continue
            except EngineError as exc:
                if not started:
                    raise
                run.say(f"{name}: log stream broke ({exc})", terminal=False)
            if s.stopping or not await container_running(s, run):
                return
            attempt += 1
            delay = min(0.1 * 2 ** attempt, 5.0)
            run.say(f"{name}: log stream ended while the container runs; re-attaching at "
                    f"byte {cur.pos(copy)} in {delay:.1f}s")
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
    """The container's own output; on a break (or in a new logger) the engine's log is read
    again from its start, leaving out the bytes the file already has: no clock, no seam."""
    copy = s.copies["container"]
    async with open_copy(copy):
        while True:
            source = exec_streams.container_output(s.docker, s.cid, copy.received)
            try:
                async for data in source:
                    copy.feed(data)
            except EngineError:
                pass
            finally:
                with anyio.CancelScope(shield=True):
                    await source.aclose()
            if s.stopping or not await container_running(s, run):
                return
            await anyio.sleep(0.5)


async def monitor_status(s: Streaming, run: Run, stop: anyio.CancelScope) -> None:
    """Run the image's status command every STATUS_INTERVAL s (one long-lived exec); report
    state changes; stop on FATAL/EXITED."""
    if not s.contract.status_command:
        await anyio.sleep_forever()
    seen: dict[str, str] = {}
    loops = CrashLoopWatch(s.session, run.say, last_lines, s.crash_policy)
    async with contextlib.aclosing(exec_streams.status_outputs(
            s.docker, s.cid, s.contract.status_command, STATUS_INTERVAL,
            f"{s.mark}/status")) as outputs:
        async for out in outputs:
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
    """Append what the followers could not read before the container stopped, streamed out
    of the stopped container: only the files that still hold unread bytes."""
    for name in s.contract.services:
        copy, cur = s.copies[name], s.cursors[name]
        path = f"{s.contract.log_dir}/{name}.log"
        pos = cur.pos(copy)
        size = await exec_streams.file_size(s.docker, s.cid, path)
        parts: list[tuple[str, int]] = []
        if cur.pending in ("replaced", "truncated") or (size is not None and size < pos):
            # A rotation the follower had no time to resolve: the rest of .1, then the new
            # file from its start.
            if cur.pending != "truncated":
                old_size = await exec_streams.file_size(s.docker, s.cid, f"{path}.1")
                if old_size is not None and old_size > pos:
                    parts.append((f"{path}.1", pos))
            parts.append((path, 0))
        elif size is not None and size > pos:
            parts.append((path, pos))
        got = 0
        for part, offset in parts:
            got += await append_stream(copy, exec_streams.stream_file(
                s.docker, s.cid, part, offset))
        if got:
            run.say.log_only(f"{name}: collected {got} final bytes after the stop")


async def append_stream(copy: StreamCopy, source) -> int:  # type: ignore[no-untyped-def]
    """Append a finished stream's bytes to ``copy``'s file (after its follower ended)."""
    got = 0
    async with FileSink(copy.path) as sink:
        try:
            async for chunk in source:
                got += len(chunk)
                if copy.failed is None:
                    try:
                        await sink.write(chunk)
                    except OSError as exc:
                        copy.failed = f"cannot write {copy.path}: {exc.strerror or exc}"
                        if copy.on_fault is not None:
                            copy.on_fault(copy.failed)
                copy.written += len(chunk)
                if copy.on_lines is not None:
                    copy.on_lines(copy.name, chunk)
        finally:
            await source.aclose()
    return got


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


def make_copies(s: Streaming, run: Run) -> None:
    """One StreamCopy (and Cursor) per stream, resuming from the host files and the state."""
    on_lines = s.printer.lines if s.printer else None

    def on_fault(text: str) -> None:
        run.say(text)

    for name in [*s.contract.services, "container"]:
        copy = StreamCopy(name, s.session / f"{name}.log", on_lines, on_fault)
        s.copies[name] = copy
        if name != "container":
            s.cursors[name] = Cursor.from_state(s.saved_cursors.get(name), copy)


async def stream_until_done(s: Streaming, run: Run,
                            on_attached: anyio.Event | None = None,
                            on_positions: Callable[[dict], None] | None = None) -> None:
    """Follow every stream until a stop, a crash, a signal or a hand-over; then tear down
    the streams (and, unless handing over, stop the container and collect the rest)."""
    gnu = await exec_streams.gnu_tail_path(s.docker, s.cid)
    if not gnu:
        run.say.log_only("image has no GNU tail: following by polling once a second")
    stale = await exec_streams.kill_marked(s.docker, s.cid, f"{s.mark}/", exact=False)
    if stale:
        run.say(f"stopped {stale} log followers left in the container by an earlier logger",
                terminal=False)
    make_copies(s, run)
    async with anyio.create_task_group() as outer:
        term = s.printer or s.terminal
        if term is not None:
            outer.start_soon(term.pump)
        if on_positions is not None:
            s.persist = lambda: on_positions(s.positions())
            outer.start_soon(_save_positions, s, on_positions)
        await _follow_and_stop(s, run, gnu, on_attached)
        if not run.handing_over and not run.teardown_failed:
            with bounded(run, "collecting the final log bytes", ENGINE_GRACE):
                await collect_tails(s, run)
        if on_positions is not None:
            on_positions(s.positions())
        if term is not None:
            await term.drain()
        outer.cancel_scope.cancel()


async def _save_positions(s: Streaming, save: Callable[[dict], None]) -> None:
    last: dict = {}
    while True:
        await anyio.sleep(1.0)
        now = s.positions()
        if now != last:
            with contextlib.suppress(OSError):
                save(now)
            last = now


async def _follow_and_stop(s: Streaming, run: Run, gnu: str | None,
                           on_attached: anyio.Event | None) -> None:
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
        s.stopping = True
        if run.handing_over:
            # The background logger takes over from the exact positions: stop reading now.
            streams.cancel_scope.cancel()
            return
        run.say("stopping the container", terminal=run.stop_signal is not None)
        with bounded(run, "stopping the container", s.stop_timeout + ENGINE_GRACE):
            await stop_container(s, run)
        # Followers end at EOF once the container is down; bound the wait. An engine that
        # did not answer the stop will not end them either.
        streams.cancel_scope.deadline = anyio.current_time() + (
            0 if run.teardown_failed else DRAIN_GRACE)
