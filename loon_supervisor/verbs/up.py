"""The one place that owns a deployment's lifetime: phases, signals, teardown, exit code.

``up`` runs build -> start -> follow inside one task group. A dedicated task
(:func:`loon_supervisor.lifecycle.control.watch_signals`) receives SIGINT/SIGTERM: the first cancels the
build or start phase, or asks the follow phase to stop the container gracefully; the second
kills the container at once. Whatever happened, teardown runs shielded: stop, drain every
stream to EOF, collect the bytes the followers could not read before the container stopped,
close every file, remove the container.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import aiodocker
import anyio
from rich.console import Console

from loon_supervisor.engine import containers, images
from loon_supervisor.engine.build_context import included_files
from loon_supervisor.engine.client import open_engine
from loon_supervisor.engine.endpoint import resolve_endpoint
from loon_supervisor.engine.remote_paths import ensure_on_engine
from loon_supervisor.errors import (
    BuildFailed,
    ConfigError,
    ContainerConflict,
    ImageContractError,
    LoonError,
)
from loon_supervisor.lifecycle.control import (
    Reporter,
    Run,
    operator_error,
    signal_exit_code,
    watch_signals,
)
from loon_supervisor.lifecycle.detach import hand_over, start_logger, stop_logger
from loon_supervisor.lifecycle.recreate import remove_stopped
from loon_supervisor.lifecycle.state import (
    DeploymentLock,
    clear_foreground_state,
    lock_holder,
    read_state,
    run_state,
    state_path,
    write_state,
)
from loon_supervisor.paths import build_files_dir, logs_dir, project_root
from loon_supervisor.sinks.build_progress import BuildProgress
from loon_supervisor.sinks.session import EventLog, new_session_dir
from loon_supervisor.sinks.terminal import Printer
from loon_supervisor.spec.build_inputs import prepare as prepare_build_inputs
from loon_supervisor.spec.envfile import (
    LOCAL_DATA_TARGET,
    MEDIA_TARGET,
    MINIO_TARGET,
    MYSQL_TARGET,
    read_env_file,
)
from loon_supervisor.spec.minio import align_env
from loon_supervisor.spec.prepare import Prepared, prepare
from loon_supervisor.streams.crashloop import CrashLoopPolicy
from loon_supervisor.streams.follow import (
    ENGINE_GRACE,
    Streaming,
    bounded,
    collect_tails,
    last_lines,
    stream_until_done,
)
from loon_supervisor.verbs.down import remove_deployment


@dataclass
class UpOptions:
    config_file: Path
    env_file: str = ".env"
    verbose: bool = False
    detached: bool = False
    replace: bool = False
    logs_root: Path | None = None
    # Run only these of the image's services (``loon dev``); None runs all of them.
    only: tuple[str, ...] | None = None
    # Called once the config is valid and the env file written (``loon dev``'s env file).
    on_prepared: Callable[[Prepared, Reporter], None] | None = None


async def build_phase(docker: aiodocker.Docker, prepared: Prepared, run: Run,
                      verbose: bool, console: Console | None) -> images.ImageContract:
    cfg = prepared.config
    d = cfg.deploymentSettings
    base = prepared.config_path.resolve().parent
    default_dir = "docker-local" if cfg.generalSettings.environment == "local" else "docker"
    context = Path(d.imageDirectory) if d.imageDirectory else project_root() / default_dir
    if not context.is_absolute():
        context = project_root() / context
    try:
        shared: dict[str, Path | bytes | None] = dict(included_files(context))
    except ValueError as exc:
        raise BuildFailed("preparing the build context", str(exc)) from None
    inputs = await prepare_build_inputs(cfg, base, build_files_dir() / "cache", run.say)
    req = images.BuildRequest(context=context, tag=d.imageTag, network_mode=d.buildNetworkMode,
                              build_args=inputs.build_args,
                              extra_files={**shared, **inputs.extra_files})
    run.say(f"building image {d.imageTag} from {context}")

    def on_line(line: str) -> None:
        run.say.log_only(f"build: {line}")
        if verbose and console is not None:
            console.print(line, markup=False, highlight=False)

    with BuildProgress(run.say, d.imageTag, None if verbose else console) as progress:
        await images.build_image(docker, req, on_line, progress.step)
        progress.done()
    run.say(f"built {d.imageTag}")
    return await images.read_contract(docker, d.imageTag)


def select_services(contract: images.ImageContract, only: tuple[str, ...] | None,
                    say: Reporter) -> images.ImageContract:
    """The contract for the services this container runs (run-time selection)."""
    if only is None:
        return contract
    if not contract.run_services_env:
        raise ImageContractError(
            f"image {contract.image} cannot run a subset of its services: it has no "
            f"'{images.RUN_SERVICES_LABEL}' label (see README, the image contract)")
    chosen = tuple(s for s in contract.services if s in only)
    missing = [s for s in only if s not in contract.services]
    if missing:
        say(f"not in image {contract.image}: {', '.join(missing)} (skipped)")
    if not chosen:
        raise ImageContractError(f"image {contract.image} holds none of {', '.join(only)}")
    return replace(contract, services=chosen)


def container_spec(prepared: Prepared, contract: images.ImageContract) -> containers.ContainerSpec:
    cfg = prepared.config
    d = cfg.deploymentSettings
    binds = [f"{cfg.mySqlSettings.sourceVolumeLocation}:{MYSQL_TARGET}"]
    if cfg.minioSettings and cfg.generalSettings.environment == "production":
        # Without MinIO the same host directory keeps the uploads (minio_presence.py).
        target = MINIO_TARGET if prepared.env.get("MINIO_ENABLED") == "true" else MEDIA_TARGET
        binds.append(f"{cfg.minioSettings.sourceVolumeLocation}:{target}")
    copies: dict[str, Path] = {}
    if cfg.nginxSettings and not cfg.generalSettings.useHttp:
        n = cfg.nginxSettings
        if resolve_endpoint().remote:  # the certificates live on this machine: send them
            copies[n.targetVolumeLocation] = Path(n.sourceVolumeLocation)
        else:
            binds.append(f"{n.sourceVolumeLocation}:{n.targetVolumeLocation}:ro")
    if cfg.localDataSettings and cfg.generalSettings.environment == "local":
        binds.append(f"{cfg.localDataSettings.sourceVolumeLocation}:{LOCAL_DATA_TARGET}:ro")
    env = read_env_file(prepared.env_path)
    if contract.run_services_env:
        env[contract.run_services_env] = ",".join(contract.services)
    return containers.ContainerSpec(
        name=d.containerName, image=contract.image, env=env,
        log_dir=contract.log_dir, binds=binds, network_mode=d.networkMode,
        ports=d.publishedPorts, stop_timeout=d.stopTimeout, copies=copies,
    )


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
    say(f"engine: {resolve_endpoint().describe()}")
    run = Run(say=say)
    try:
        if opts.on_prepared is not None:
            opts.on_prepared(prepared, say)
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch_signals, run, True)
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
    name = prepared.config.deploymentSettings.containerName
    lock = await _take_lock(name, opts.replace, console)
    try:
        return await _up_locked(prepared, run, opts, session, console, lock)
    finally:
        lock.release()


async def _take_lock(name: str, replace: bool, console: Console) -> DeploymentLock:
    """One follower per deployment: the lock, taken before anything starts."""
    lock = DeploymentLock.acquire(name)
    if lock is None and replace:
        await stop_logger(name, console)
        lock = DeploymentLock.acquire(name, wait=2.0)
    if lock is None:
        raise ContainerConflict(
            f"deployment '{name}' already exists and is followed by pid {lock_holder(name)} (a "
            "background logger or another `up`): stop it with `python3 build.py -D` (or "
            "`loon down`), or pass --replace")
    return lock


async def _up_locked(prepared: Prepared, run: Run, opts: UpOptions, session: Path,
                     console: Console, lock: DeploymentLock) -> int:
    cfg = prepared.config
    name = cfg.deploymentSettings.containerName
    async with open_engine() as docker:
        contract = None
        try:
            with run.phase_scope:
                built = await build_phase(docker, prepared, run, opts.verbose, console)
                align_env(prepared, built.services, run.say)
                contract = select_services(built, opts.only, run.say)
                if resolve_endpoint().remote:  # volume dirs live there: check/make them there
                    for line in await ensure_on_engine(docker, cfg.deploymentSettings.imageTag,
                                                       resolve_endpoint().describe(),
                                                       cfg.volume_dirs()):
                        run.say(line)
                await _fault_delay("starting")
                if cfg.deploymentSettings.orchestrator == "container":
                    if opts.replace:  # the old follower collected its bytes, or we do now
                        await remove_deployment(docker, name, console)
                    else:
                        await remove_stopped(docker, name, run.say)
                    run.cid = await containers.create_and_start(
                        docker, container_spec(prepared, contract))
                    run.say(f"started container {name} ({run.cid[:12]})")
        finally:
            if run.stop_signal is not None:
                with anyio.CancelScope(shield=True):
                    await _cleanup_unstarted(docker, run, name)
        if run.stop_signal is not None:
            return signal_exit_code(run.stop_signal)
        if cfg.deploymentSettings.orchestrator == "swarm":
            from loon_supervisor.swarm.up import swarm_up

            assert contract is not None
            spec = container_spec(prepared, contract)
            return await swarm_up(docker, cfg, contract, spec.env, spec.binds, run, session,
                                  opts.detached)
        assert contract is not None and run.cid is not None
        state = run_state(prepared, contract, run.cid, session)
        if opts.detached:
            return await hand_over(docker, run, lock, state)
        write_state(state_path(name), {**state, "foreground_pid": os.getpid()})
        printer = Printer(list(contract.services) + ["container"]) if opts.verbose else None
        terminal = printer or Printer([])
        d = cfg.deploymentSettings
        s = Streaming(docker, run.cid, contract, session, d.stopTimeout, printer, mark=name,
                      terminal=terminal,
                      crash_policy=CrashLoopPolicy(d.crashLoopRestarts, d.crashLoopWindow))
        run.say.queue = terminal

        def save(positions: dict) -> None:
            current = read_state(name)
            if current is not None and current.get("cid") == run.cid:
                write_state(state_path(name), {**current, "positions": positions})

        attached = anyio.Event()
        run.can_hand_over = True
        handed = by_down = False
        try:
            await _stream_and_report(s, run, attached, prepared, save)
            if run.handing_over:
                handed = await _hand_over_on_hang_up(run, lock, state, s)
        finally:
            if not handed and not run.teardown_failed:
                with bounded(run, "removing the container", ENGINE_GRACE):
                    await containers.remove(docker, run.cid)
                    run.say(f"removed container {name}", terminal=run.stop_signal is not None
                            or run.failure is not None)
                by_down = bool((read_state(name) or {}).get("down_requested"))
                clear_foreground_state(name, run.cid)
        if handed:
            return 0
        if run.failure is not None:
            return 1
        if run.stop_signal is not None:
            if by_down and run.stop_signal == signal.SIGTERM:
                return 0  # `loon down` asked: a normal stop
            return signal_exit_code(run.stop_signal)
        return 0


async def _hand_over_on_hang_up(run: Run, lock: DeploymentLock, state: dict,
                                s: Streaming) -> bool:
    """SIGHUP: a background logger continues from the exact positions; the deployment keeps
    running. If it cannot start, the run stops the container as usual."""
    with anyio.CancelScope(shield=True):
        proc, ok = await start_logger(state["name"], {**state, "positions": s.positions()},
                                      lock)
    if ok:
        run.say(f"terminal hung up: background logger pid {proc.pid} keeps writing "
                f"{s.session}; stop everything with `loon down`")
        return True
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    run.say("terminal hung up and the background logger did not start; stopping the "
            "container")
    run.handing_over = False
    with bounded(run, "stopping the container", s.stop_timeout + ENGINE_GRACE):
        await containers.stop(s.docker, s.cid, s.stop_timeout)
    with bounded(run, "collecting the final log bytes", ENGINE_GRACE):
        await collect_tails(s, run)
    return False


async def _stream_and_report(s: Streaming, run: Run, attached: anyio.Event,
                             prepared: Prepared, save: Callable[[dict], None]) -> None:
    async with anyio.create_task_group() as tg:
        async def announce() -> None:
            await attached.wait()
            run.say(f"Loon is up: {prepared.config.url}")
            run.say(f"logs are in {s.session} (tail -f them); press Ctrl+C to stop")
        tg.start_soon(announce)
        await stream_until_done(s, run, attached, save)
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
    with anyio.move_on_after(30):
        await _remove_named(docker, name, run)


async def _remove_named(docker: aiodocker.Docker, name: str, run: Run) -> None:
    existing = await containers.find(docker, name)
    if existing is not None and (existing.get("Labels") or {}).get(containers.TOOL_LABEL) == "1":
        await containers.remove(docker, existing["Id"])
        run.say(f"removed container {name}")
