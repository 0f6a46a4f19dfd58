"""``up`` (``python3 build.py``): validate, build, start, follow; the foreground run.

The phases run inside one task group beside the signal task
(:func:`~loon_supervisor.lifecycle.control.watch_signals`): the first SIGINT/SIGTERM
cancels the build or start phase, or asks the follow phase to stop the container
gracefully; the second kills it. The container itself is owned by a
:class:`~loon_supervisor.lifecycle.deployment.Deployment`; ``-d`` hands it to a background
logger (:mod:`loon_supervisor.lifecycle.logger_process`), and so does a terminal hang-up.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import anyio
from rich.console import Console

from loon_supervisor import versions
from loon_supervisor.engine.client import open_engine
from loon_supervisor.engine.docker_engine import DockerEngine
from loon_supervisor.engine.endpoint import resolve_endpoint
from loon_supervisor.engine.images import ImageContract
from loon_supervisor.errors import (
    ConfigError,
    ContainerConflict,
    EngineError,
    EngineUnreachable,
    LoonError,
    operator_error,
    signal_exit_code,
)
from loon_supervisor.lifecycle.control import Control, watch_signals
from loon_supervisor.lifecycle.crashloop import CrashLoopPolicy
from loon_supervisor.lifecycle.deployment import Deployment, remove_unstarted
from loon_supervisor.lifecycle.logger_process import stop_logger
from loon_supervisor.lifecycle.recreate import remove_stopped
from loon_supervisor.lifecycle.run import Owner, Run, remove_deployment
from loon_supervisor.lifecycle.state import DeploymentLock, DeploymentState, lock_holder
from loon_supervisor.paths import build_files_dir, logs_dir
from loon_supervisor.sinks import retention
from loon_supervisor.sinks.reporter import Reporter
from loon_supervisor.sinks.session import Session
from loon_supervisor.sinks.terminal import Printer
from loon_supervisor.spec.client import absent_message, client_absence
from loon_supervisor.spec.loon import container_spec, select_services
from loon_supervisor.spec.minio import align_env
from loon_supervisor.spec.prepare import Prepared, prepare
from loon_supervisor.streams.follow import CONTAINER
from loon_supervisor.streams.sources.choice import Sources, choose, prepare_host_dir
from loon_supervisor.versions.build import promote
from loon_supervisor.versions.swap import Swap

# How long a foreground run's ``while_following`` task may take after the follow ended.
BESIDE_GRACE = 60.0


@dataclass
class UpRun:
    config_file: Path
    env_file: str = ".env"
    verbose: bool = False
    detached: bool = False
    replace: bool = False
    # Run only these of the image's services (``loon dev``); None runs all of them.
    only: tuple[str, ...] | None = None
    # Called once the config is valid and the env file written (``--prepare-dev``'s client
    # env; ``loon dev``'s check for host networking).
    on_prepared: Callable[[Prepared, Reporter], object] | None = None
    # Called once the build has decided what the image holds and the env file agrees with it
    # (``loon dev``'s dev.env: written once, never with a MinIO the image lacks).
    on_built: Callable[[Prepared, Reporter], object] | None = None
    # Start this existing version as it is, without a build (restore, rollback).
    image: str | None = None
    # Called after the build with the new version's image, before the running version is
    # stopped (the pre-swap backup); an error there stops the deploy with the old version
    # still serving.
    before_swap: Callable[[DockerEngine, Reporter, str], Awaitable[object]] | None = None
    # Runs beside a foreground run's follow (a redeploy's health gate); it may end the run
    # with ``dep.fail(why)`` and ``dep.control.stop_requested``. Once the follow ends it is
    # given the time to finish (it sees the container stopped), unless a signal ended it.
    while_following: Callable[[Deployment], Coroutine[Any, Any, None]] | None = None
    # False (build.py -s): no progress bar; the build's steps are said as plain lines.
    progress: bool = True


def _write_client_dev_env(prepared: Prepared, say: Reporter) -> None:
    """``--prepare-dev``: the client's ``apps/client/.env`` once the config is valid."""
    from loon_supervisor.spec.client_env import write_client_dev_env

    path, hint = write_client_dev_env(prepared.config, prepared.config_path)
    say(f"wrote {path}")
    say(hint)


async def build_phase(engine: DockerEngine, prepared: Prepared, say: Reporter,
                      verbose: bool, console: Console | None, progress: bool = True
                      ) -> ImageContract:
    """A new version: built (or pulled, with ``deploymentSettings.image``) under its own
    immutable tag (:mod:`loon_supervisor.versions`); ``imageTag`` moves to it once it runs."""
    from loon_supervisor.versions.build import build_version

    return await build_version(engine, prepared, say, verbose, console, progress)


async def engine_answers() -> None:
    """Return once the engine answers (one version call), so that a run that cannot start
    changes nothing on disk but the env file validate writes too.

    :raises EngineError: unreachable, refused, or silent for ENGINE_GRACE seconds.
    """
    from loon_supervisor.lifecycle.deployment import ENGINE_GRACE

    with anyio.move_on_after(ENGINE_GRACE) as scope:
        async with open_engine():
            return
    if scope.cancelled_caught:
        raise EngineUnreachable(f"the Docker engine ({resolve_endpoint().describe()}) did not "
                                f"answer within {ENGINE_GRACE:.0f}s; check it (`docker info`) "
                                "and run this again")


async def up(opts: UpRun) -> int:
    """Build, start, follow. Exit code: 0, 1 (failure), 2 (config), 130/143 (signal)."""
    console = Console(soft_wrap=True)
    try:
        checked = prepare(opts.config_file, opts.env_file, create_dirs=False)
        await engine_answers()  # no volume folder, session or logs/latest change before
        prepared = prepare(opts.config_file, opts.env_file, source=checked.source)
    except ConfigError as exc:
        Console(stderr=True, soft_wrap=True).print(str(exc), markup=False, highlight=False)
        return exc.exit_code
    session = Session.new(logs_dir(), console)
    say = session.say
    for m in prepared.messages:
        say(m)
    say(f"logs: {session.path}")
    say(f"engine: {resolve_endpoint().describe()}")
    await anyio.to_thread.run_sync(
        retention.run_pass, logs_dir(), build_files_dir(),
        retention.Limits.from_settings(prepared.config.deploymentSettings.model_dump()),
        session.path, say, say.log_only)
    control = Control()
    try:
        if opts.on_prepared is not None:
            opts.on_prepared(prepared, say)
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch_signals, control, say, True)
            try:
                code = await _up(prepared, control, opts, session, console)
            finally:
                tg.cancel_scope.cancel()
        return code
    except (LoonError, BaseExceptionGroup) as exc:
        err = operator_error(exc)
        say(f"error: {err}")
        return err.exit_code
    finally:
        session.close()


async def _up(prepared: Prepared, control: Control, opts: UpRun, session: Session,
              console: Console) -> int:
    d = prepared.config.deploymentSettings
    # --replace builds first, without the lock: the running version keeps serving (and its
    # follower keeps following) until the new image exists; a failed build changes nothing.
    build_first = opts.replace and d.orchestrator == "container"
    held = _Held(None if build_first else await _take_lock(d.containerName, opts.replace,
                                                              session.say))
    try:
        return await _up_locked(prepared, control, opts, session, console, held)
    finally:
        if held.lock is not None:
            held.lock.release()


@dataclass
class _Held:
    """The deployment's lock once this run holds it (a build-first run takes it late)."""

    lock: DeploymentLock | None


async def _take_lock(name: str, replace: bool, say: Reporter) -> DeploymentLock:
    """One follower per deployment: the lock, taken before anything starts."""
    lock = DeploymentLock.acquire(name)
    if lock is None and replace:
        await stop_logger(name, say)
        lock = DeploymentLock.acquire(name, wait=2.0)
    if lock is None:
        raise ContainerConflict(
            f"deployment '{name}' already exists and is followed by pid {lock_holder(name)} (a "
            "background logger or another `up`): stop it with `python3 build.py -D` (or "
            "`loon down`), or pass --replace")
    return lock


def run_state(prepared: Prepared, contract: ImageContract, cid: str, session: Path
              ) -> DeploymentState:
    """The state of one run, as both the foreground ``up`` and ``up -d`` write it."""
    d = prepared.config.deploymentSettings
    return DeploymentState(
        name=d.containerName, cid=cid, session=session, image=contract.image,
        services=contract.services, log_dir=contract.log_dir,
        status_command=contract.status_command, url=prepared.config.url,
        stop_timeout=d.stopTimeout, crash_loop=(d.crashLoopRestarts, d.crashLoopWindow),
        log_backups=contract.log_backups, log_max_bytes=d.logMaxMegabytes << 20)


async def _up_locked(prepared: Prepared, control: Control, opts: UpRun, session: Session,
                     console: Console, held: _Held) -> int:
    """Without ``held.lock`` (build first), the lock is taken after the build, which stops
    the old version; the swap's downtime is measured from there."""
    cfg = prepared.config
    d = cfg.deploymentSettings
    name = d.containerName
    say = session.say
    endpoint = resolve_endpoint()
    remote = endpoint.remote
    # -i: the host directory is tried, then verified (exec when the engine does not see it)
    choice = choose(d.logSource, endpoint.socket_remote, build_files_dir(), name)
    async with open_engine() as engine:
        contract: ImageContract | None = None
        run: Run | None = None
        swap = Swap()
        try:
            with control.phase_scope:
                try:
                    built = (await engine.read_contract(opts.image) if opts.image else
                             await build_phase(engine, prepared, say, opts.verbose,
                                               console, opts.progress))
                    if held.lock is None and opts.before_swap is not None:
                        await opts.before_swap(engine, say, built.image)
                except (LoonError, BaseExceptionGroup) as exc:
                    if held.lock is None:  # built first: nothing was stopped
                        raise _kept_serving(operator_error(exc), name) from None
                    raise
                if held.lock is None:
                    await swap.start(engine, name)
                    held.lock = await _take_lock(name, True, say)
                if align_env(prepared, built.services, say) and opts.on_prepared:
                    opts.on_prepared(prepared, say)  # files derived from the env
                if opts.on_built is not None:
                    opts.on_built(prepared, say)
                contract = select_services(built, opts.only, say)
                if remote:  # volume dirs live there: check/make them there
                    for line in await engine.ensure_on_engine(contract.image,
                                                       resolve_endpoint().describe(),
                                                       cfg.volume_dirs()):
                        say(line)
                if d.orchestrator == "container":
                    if opts.replace:  # the old follower collected its bytes, or we do now
                        code, _ = await remove_deployment(engine, name, say)
                        if code != 0:
                            raise EngineError(f"could not remove the running container of "
                                              f"deployment '{name}' (see above); nothing new "
                                              "was started: run `loon down`, then this again")
                    else:
                        await remove_stopped(engine, name, say)
                    if choice.host_dir is not None:  # after the old container's removal
                        prepare_host_dir(choice.host_dir)
                    sources = Sources(choice, engine, contract.log_dir)
                    run = Run(engine, name, contract, session, control, owner=Owner.FOREGROUND,
                              lock=held.lock, stop_timeout=d.stopTimeout,
                              crash_policy=CrashLoopPolicy(d.crashLoopRestarts,
                                                           d.crashLoopWindow),
                              source=sources,
                              prune=retention.StagingPruner(choice.host_dir, retention.Limits
                                                            .from_settings(d.model_dump())))
                    try:
                        cid = await run.start(replace(container_spec(prepared, contract,
                                                                     remote),
                                                      log_host_dir=choice.host_dir))
                    except LoonError as exc:
                        versions.record_outcome(name, contract.image, versions.FAILED, str(exc))
                        raise
                    say(f"started container {name} ({cid[:12]})")
                    await sources.verify(cid, say)
                    downtime = swap.done(say)
                    await promote(engine, prepared, contract.image, say, downtime)
                    say.log_only(f"log source chosen: {sources.choice.describe()}; "
                                         f"{sources.choice.reason}")
                    if why := await client_absence(engine, cid, contract.services):
                        say(absent_message(why))
        finally:
            if control.stop_signal is not None and held.lock is not None:
                with anyio.CancelScope(shield=True):
                    if await remove_unstarted(engine, name):
                        say(f"removed container {name}")
        if control.stop_signal is not None:
            return signal_exit_code(control.stop_signal)
        assert contract is not None
        if d.orchestrator == "swarm":
            from loon_supervisor.swarm.up import swarm_up

            await promote(engine, prepared, contract.image, say)
            spec = container_spec(prepared, contract, remote)
            return await swarm_up(engine, cfg, contract, spec.env, spec.binds, control,
                                  session, opts.detached, held.lock)
        assert run is not None and run.cid is not None
        state = replace(run_state(prepared, contract, run.cid, session.path),
                        log_source=sources.kind,
                        url="" if opts.only is not None and "nginx" not in contract.services
                        else prepared.config.url)  # loon dev: nothing serves HTTP
        assert held.lock is not None
        if opts.detached:
            return await run.detach(state)
        return await _follow_foreground(run, opts, state)


def _kept_serving(exc: LoonError, name: str) -> LoonError:
    """A build-first failure: the running version was never touched; say so."""
    now = versions.current(name)
    err = LoonError(f"{exc}; nothing was stopped: "
                    + (f"the running version {now.tag} keeps serving" if now else
                       "what runs (if anything) keeps running"))
    err.exit_code = exc.exit_code
    return err


def up_line(state: DeploymentState) -> str:
    """The closing line: the URL, or with ``--only``/``loon dev`` without nginx what runs."""
    if state.url:
        return f"Loon is up: {state.url}"
    return (f"up: {', '.join(state.services)} (no nginx in this run, so nothing serves "
            "HTTP)")


async def _follow_foreground(run: Run, opts: UpRun, state: DeploymentState) -> int:
    control, dep = run.control, run.dep
    say = run.session.say
    run.record(replace(state, foreground_pid=os.getpid()))
    printer = Printer([*dep.contract.services, CONTAINER]) if opts.verbose else None
    terminal = printer or Printer([])
    say.queue = terminal

    def announce() -> None:
        say(up_line(state))
        say(f"logs are in {run.session.path} (tail -f them); press Ctrl+C to stop")

    control.can_hand_over = True
    try:
        async with anyio.create_task_group() as beside:
            if opts.while_following is not None:
                beside.start_soon(_beside, opts.while_following, dep)
            await run.follow(printer=printer, terminal=terminal, on_attached=announce)
            if control.stop_signal is not None or control.handing_over:
                beside.cancel_scope.cancel()
            else:  # let it see the stopped container and say what it decided
                beside.cancel_scope.deadline = anyio.current_time() + BESIDE_GRACE
        run.report_failure()
    finally:
        outcome = await run.teardown()
    return outcome.exit_code(control.stop_signal)


async def _beside(task: Callable[[Deployment], Coroutine[Any, Any, None]],
                  dep: Deployment) -> None:
    """``task`` beside the follow; a signal (or a hang-up) ends it at once, while the
    container may still be stopping: what it would decide then no longer counts."""
    control = dep.control
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            async def end_on_signal() -> None:
                await control.stop_requested.wait()
                if control.stop_signal is not None or control.handing_over:
                    scope.cancel()

            tg.start_soon(end_on_signal)
            await task(dep)
            tg.cancel_scope.cancel()


@dataclass(frozen=True)
class UpOptions:
    """``loon up`` / ``build.py``: the flags an operator gives (``progress`` False is ``-s``: the
    build's steps as plain lines; ``prepare_dev`` also writes the Loon client's
    ``apps/client/.env``)."""

    config_file: Path
    env_file: str = ".env"
    verbose: bool = False
    detached: bool = False
    replace: bool = False
    only: tuple[str, ...] | None = None
    progress: bool = True
    prepare_dev: bool = False


async def run(opts: UpOptions) -> int:
    """A redeploy (``replace`` without ``only``), foreground or not, is gated: backup,
    health gate, rollback (upgrade/rollout.py)."""
    plan = UpRun(opts.config_file, opts.env_file, opts.verbose, opts.detached, opts.replace,
                 only=opts.only, progress=opts.progress,
                 on_prepared=_write_client_dev_env if opts.prepare_dev else None)
    if opts.replace and opts.only is None:
        from loon_supervisor.upgrade.rollout import gated_up

        return await gated_up(plan)
    return await up(plan)
