"""The one place that owns a deployment's lifetime: phases, signals, teardown, exit code.

``up`` runs build -> start -> follow inside one task group. A dedicated task
(:func:`loon_supervisor.run.watch_signals`) receives SIGINT/SIGTERM: the first cancels the
build or start phase, or asks the follow phase to stop the container gracefully; the second
kills the container at once. Whatever happened, teardown runs shielded: stop, drain every
stream to EOF, collect the bytes the followers could not read before the container stopped,
close every file, remove the container.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import aiodocker
import anyio
from rich.console import Console

from loon_supervisor.crashloop import CrashLoopPolicy
from loon_supervisor.detach import hand_over
from loon_supervisor.engine import containers, images
from loon_supervisor.engine.build_context import included_files
from loon_supervisor.engine.build_inputs import prepare as prepare_build_inputs
from loon_supervisor.engine.client import open_engine
from loon_supervisor.envfile import (
    LOCAL_DATA_TARGET,
    MEDIA_TARGET,
    MINIO_TARGET,
    MYSQL_TARGET,
    read_env_file,
)
from loon_supervisor.errors import BuildFailed, ConfigError, LoonError
from loon_supervisor.follow import Streaming, last_lines, stream_until_done
from loon_supervisor.logs.session import EventLog, new_session_dir
from loon_supervisor.logs.terminal import Printer
from loon_supervisor.minio_presence import align_env
from loon_supervisor.paths import build_files_dir, logs_dir, project_root
from loon_supervisor.prepare import Prepared, prepare
from loon_supervisor.run import Reporter, Run, operator_error, signal_exit_code, watch_signals


@dataclass
class UpOptions:
    config_file: Path
    env_file: str = ".env"
    verbose: bool = False
    detached: bool = False
    replace: bool = False
    logs_root: Path | None = None


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
    cfg = prepared.config
    d = cfg.deploymentSettings
    binds = [f"{cfg.mySqlSettings.sourceVolumeLocation}:{MYSQL_TARGET}"]
    if cfg.minioSettings and cfg.generalSettings.environment == "production":
        # Without MinIO the same host directory keeps the uploads (minio_presence.py).
        target = MINIO_TARGET if "minio" in contract.services else MEDIA_TARGET
        binds.append(f"{cfg.minioSettings.sourceVolumeLocation}:{target}")
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
                contract = await build_phase(docker, prepared, run, opts.verbose, console)
                align_env(prepared, contract.services, run.say)
                await _fault_delay("starting")
                if opts.replace:
                    await _remove_named(docker, name, run)
                run.cid = await containers.create_and_start(docker, container_spec(prepared,
                                                                                   contract))
                run.say(f"started container {name} ({run.cid[:12]})")
        finally:
            if run.stop_signal is not None:
                with anyio.CancelScope(shield=True):
                    await _cleanup_unstarted(docker, run, name)
        if run.stop_signal is not None:
            return signal_exit_code(run.stop_signal)
        assert contract is not None and run.cid is not None
        if opts.detached:
            return await hand_over(docker, run, prepared, contract, session)
        printer = Printer(list(contract.services) + ["container"]) if opts.verbose else None
        d = cfg.deploymentSettings
        s = Streaming(docker, run.cid, contract, session, d.stopTimeout, printer,
                      crash_policy=CrashLoopPolicy(d.crashLoopRestarts, d.crashLoopWindow))
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
    with anyio.move_on_after(30):
        await _remove_named(docker, name, run)


async def _remove_named(docker: aiodocker.Docker, name: str, run: Run) -> None:
    existing = await containers.find(docker, name)
    if existing is not None and (existing.get("Labels") or {}).get(containers.TOOL_LABEL) == "1":
        await containers.remove(docker, existing["Id"])
        run.say(f"removed container {name}")
