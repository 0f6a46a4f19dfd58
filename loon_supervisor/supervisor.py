"""The one place that owns a deployment's lifetime: phases, signals, teardown, exit code.

``up`` runs build -> start -> stream inside one task group. A dedicated task receives
SIGINT/SIGTERM: the first cancels the build or start phase, or asks the streaming phase to
stop the container gracefully; the second kills the container at once. Whatever happened,
teardown runs shielded: stop, drain every stream to EOF, collect the bytes the followers
could not read before the container stopped, close every file, remove the container.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiodocker
import anyio
from anyio.abc import TaskStatus
from rich.console import Console

from loon_supervisor.engine import containers, exec_streams, images
from loon_supervisor.engine.build_inputs import prepare as prepare_build_inputs
from loon_supervisor.engine.client import open_engine
from loon_supervisor.errors import ConfigError, DeploymentFailed, EngineError, LoonError
from loon_supervisor.logs.multiplexer import StreamCopy, open_copy
from loon_supervisor.logs.session import EventLog, new_session_dir
from loon_supervisor.logs.terminal import Printer
from loon_supervisor.paths import build_files_dir, logs_dir, project_root
from loon_supervisor.prepare import Prepared, prepare

STATUS_INTERVAL = 2.0
FAILED_STATES = ("FATAL", "EXITED")
DRAIN_GRACE = 10.0


@dataclass
class UpOptions:
    config_file: Path
    env_file: str = ".env"
    verbose: bool = False
    detached: bool = False
    replace: bool = False
    logs_root: Path | None = None


@dataclass
class Run:
    """Shared state of one up; only the supervisor and its signal task touch it."""

    say: Reporter
    phase: str = "preparing"
    stop_signal: int | None = None
    phase_scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    stop_requested: anyio.Event = field(default_factory=anyio.Event)
    force: anyio.Event = field(default_factory=anyio.Event)
    cid: str | None = None
    failure: str | None = None


class Reporter:
    """Supervisor messages: always to out.log, to the terminal unless quiet."""

    def __init__(self, events: EventLog | None, console: Console | None) -> None:
        self.events = events
        self.console = console

    def __call__(self, text: str, *, terminal: bool = True) -> None:
        if self.events is not None:
            self.events.event(text)
        if terminal and self.console is not None:
            self.console.print(text, markup=False, highlight=False)

    def log_only(self, text: str) -> None:
        if self.events is not None:
            self.events.event(text)


def state_file(name: str) -> Path:
    return build_files_dir() / f"state.{name}.json"


def write_state(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


# ---------------------------------------------------------------- signals

async def watch_signals(run: Run) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            if run.stop_signal is None:
                run.stop_signal = signum
                run.say("stopping, press Ctrl+C again to force")
                run.phase_scope.cancel()
                run.stop_requested.set()
            else:
                run.say("forcing: killing the container now")
                run.force.set()


def signal_exit_code(signum: int) -> int:
    return 128 + signum


# ---------------------------------------------------------------- phases

async def build_phase(docker: aiodocker.Docker, prepared: Prepared, run: Run,
                      verbose: bool, console: Console | None) -> images.ImageContract:
    cfg = prepared.config
    d = cfg.deploymentSettings
    base = prepared.config_path.resolve().parent
    default_dir = "docker-local" if cfg.generalSettings.environment == "local" else "docker"
    context = Path(d.imageDirectory) if d.imageDirectory else project_root() / default_dir
    if not context.is_absolute():
        context = project_root() / context
    inputs = await prepare_build_inputs(cfg, base, build_files_dir() / "cache", run.say)
    req = images.BuildRequest(context=context, tag=d.imageTag, network_mode=d.buildNetworkMode,
                              build_args=inputs.build_args, extra_files=inputs.extra_files)
    run.say(f"building image {d.imageTag} from {context}")
    status = None
    if console is not None and not verbose:
        status = console.status(f"building {d.imageTag}")
        status.start()

    def on_line(line: str) -> None:
        run.say.log_only(f"build: {line}")
        if verbose and console is not None:
            console.print(line, markup=False, highlight=False)

    def on_step(step: str) -> None:
        if status is not None:
            status.update(f"building {d.imageTag}: {step}")

    try:
        await images.build_image(docker, req, on_line, on_step)
    finally:
        if status is not None:
            status.stop()
    run.say(f"built {d.imageTag}")
    return await images.read_contract(docker, d.imageTag)


def container_spec(prepared: Prepared, contract: images.ImageContract) -> containers.ContainerSpec:
    from loon_supervisor.envfile import LOCAL_DATA_TARGET, MINIO_TARGET, MYSQL_TARGET, read_env_file

    cfg = prepared.config
    d = cfg.deploymentSettings
    binds = [f"{cfg.mySqlSettings.sourceVolumeLocation}:{MYSQL_TARGET}"]
    if cfg.minioSettings and cfg.generalSettings.environment == "production":
        binds.append(f"{cfg.minioSettings.sourceVolumeLocation}:{MINIO_TARGET}")
    if cfg.nginxSettings and not cfg.generalSettings.useHttp:
        n = cfg.nginxSettings
        binds.append(f"{n.sourceVolumeLocation}:{n.targetVolumeLocation}:ro")
    if cfg.localDataSettings and cfg.generalSettings.environment == "local":
        binds.append(f"{cfg.localDataSettings.sourceVolumeLocation}:{LOCAL_DATA_TARGET}:ro")
    return containers.ContainerSpec(
        name=d.containerName, image=contract.image, env=read_env_file(prepared.env_path),
        log_dir=contract.log_dir, binds=binds, network_mode=d.networkMode,
        ports=d.publishedPorts, stop_timeout=d.stopTimeout,
    )


# ---------------------------------------------------------------- streaming

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


# ---------------------------------------------------------------- verbs

async def up(opts: UpOptions) -> int:
    """Build, start, follow. Exit code: 0, 1 (failure), 2 (config), 130/143 (signal)."""
    console = Console(soft_wrap=True)
    try:
        prepared = prepare(opts.config_file, opts.env_file)
    except ConfigError as exc:
        Console(stderr=True, soft_wrap=True).print(str(exc), markup=False, highlight=False)
        return exc.exit_code
    root = opts.logs_root or logs_dir()
    session = new_session_dir(root)
    events = EventLog(session / "out.log")
    say = Reporter(events, console)
    for m in prepared.messages:
        say(m)
    say(f"logs: {session}")
    run = Run(say=say)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch_signals, run)
            try:
                code = await _up(prepared, run, opts, session, console)
            finally:
                tg.cancel_scope.cancel()
        return code
    except (LoonError, BaseExceptionGroup) as exc:
        err = operator_error(exc)
        say(f"error: {err}")
        return err.exit_code
    finally:
        events.close()


async def _up(prepared: Prepared, run: Run, opts: UpOptions, session: Path,
              console: Console) -> int:
    cfg = prepared.config
    name = cfg.deploymentSettings.containerName
    async with open_engine() as docker:
        contract = None
        try:
            with run.phase_scope:
                run.phase = "building"
                contract = await build_phase(docker, prepared, run, opts.verbose, console)
                run.phase = "starting"
                await _fault_delay("starting")
                if opts.replace:
                    await _remove_named(docker, name, run)
                run.cid = await containers.create_and_start(docker, container_spec(prepared,
                                                                                   contract))
                run.say(f"started container {name} ({run.cid[:12]})")
        finally:
            if run.stop_signal is not None or run.cid is None:
                with anyio.CancelScope(shield=True):
                    await _cleanup_unstarted(docker, run, name)
        if run.stop_signal is not None:
            return signal_exit_code(run.stop_signal)
        assert contract is not None and run.cid is not None
        run.phase = "streaming"
        if opts.detached:
            from loon_supervisor.detach import hand_over

            return await hand_over(docker, run, prepared, contract, session)
        printer = Printer(list(contract.services) + ["container"]) if opts.verbose else None
        s = Streaming(docker, run.cid, contract, session,
                      cfg.deploymentSettings.stopTimeout, printer)
        attached = anyio.Event()
        try:
            await _stream_and_report(s, run, attached, prepared)
        finally:
            with anyio.CancelScope(shield=True):
                await containers.remove(docker, run.cid)
                run.say(f"removed container {name}", terminal=run.stop_signal is not None
                        or run.failure is not None)
        if run.failure is not None:
            return 1
        if run.stop_signal is not None:
            return signal_exit_code(run.stop_signal)
        return 0


async def _stream_and_report(s: Streaming, run: Run, attached: anyio.Event,
                             prepared: Prepared) -> None:
    async with anyio.create_task_group() as tg:
        async def announce() -> None:
            await attached.wait()
            run.say(f"Loon is up: {prepared.config.url}")
            run.say(f"logs are in {s.session} (tail -f them); press Ctrl+C to stop")
        tg.start_soon(announce)
        await stream_until_done(s, run, attached)
        tg.cancel_scope.cancel()
    if run.failure is not None:
        culprit = run.failure.split()[1] if run.failure.startswith("service ") else "container"
        run.say(f"FAILED: {run.failure}; last lines of {culprit}.log:")
        for line in last_lines(s.session / f"{culprit}.log"):
            run.say(f"  {line}")


async def _fault_delay(phase: str) -> None:
    """Tests stretch a phase (LOON_FAULT_DELAY_<PHASE>=seconds) to signal inside it."""
    delay = os.environ.get(f"LOON_FAULT_DELAY_{phase.upper()}")
    if delay:
        await anyio.sleep(float(delay))


async def _cleanup_unstarted(docker: aiodocker.Docker, run: Run, name: str) -> None:
    """After an aborted build or start, leave no container behind."""
    if run.stop_signal is None:
        return
    with anyio.move_on_after(30):
        await _remove_named(docker, name, run)


async def _remove_named(docker: aiodocker.Docker, name: str, run: Run) -> None:
    existing = await containers.find(docker, name)
    if existing is not None and (existing.get("Labels") or {}).get(containers.TOOL_LABEL) == "1":
        await containers.remove(docker, existing["Id"])
        run.say(f"removed container {name}")


async def down(config_file: Path, name: str | None = None) -> int:
    """Stop and remove this deployment (and its background logger). Works without config."""
    console = Console(soft_wrap=True)
    name = name or deployment_name(config_file)
    from loon_supervisor.detach import stop_logger

    stopped_logger = await stop_logger(name, console)
    async with open_engine() as docker:
        found = await containers.list_ours(docker, name)
        for c in found:
            cid = c["Id"]
            if c.get("State") == "running":
                console.print(f"stopping container {name} ({cid[:12]})...")
                await containers.stop(docker, cid, _stop_timeout(config_file))
            await containers.remove(docker, cid)
            console.print(f"removed container {name} ({cid[:12]})")
    if not found and not stopped_logger:
        console.print(f"nothing to stop: no container of deployment '{name}' exists")
    return 0


def deployment_name(config_file: Path) -> str:
    """The container name from config.json, read leniently: -D must work with a bad config."""
    try:
        data = json.loads(config_file.read_text())
        value = data["deploymentSettings"]["containerName"]
        if isinstance(value, str) and value:
            return value
    except Exception:
        pass
    return "loon"


def _stop_timeout(config_file: Path) -> int:
    try:
        value = json.loads(config_file.read_text())["deploymentSettings"]["stopTimeout"]
        return int(value)
    except Exception:
        return 10


def operator_error(exc: BaseException) -> LoonError:
    """The LoonError inside ``exc`` (task groups wrap them); re-raise anything else."""
    if isinstance(exc, LoonError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        matched, rest = exc.split(LoonError)
        if matched is not None and rest is None:
            leaf: BaseException = matched
            while isinstance(leaf, BaseExceptionGroup):
                leaf = leaf.exceptions[0]
            assert isinstance(leaf, LoonError)
            return leaf
    raise exc


def run_sync(coro_fn, *args) -> int:  # type: ignore[no-untyped-def]
    """anyio.run on asyncio (aiodocker is asyncio-only)."""
    try:
        return anyio.run(coro_fn, *args, backend="asyncio")
    except KeyboardInterrupt:
        return signal_exit_code(signal.SIGINT)
    except (LoonError, BaseExceptionGroup) as exc:
        print(f"error: {operator_error(exc)}", file=sys.stderr)
        return operator_error(exc).exit_code


__all__ = ["UpOptions", "up", "down", "DeploymentFailed"]
