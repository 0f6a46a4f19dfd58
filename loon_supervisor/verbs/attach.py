"""``loon attach``: follow a running deployment again (after its logger died), continuing
each session file at the byte where it stopped. ``--wait`` follows in the foreground, for a
service manager (:func:`~loon_supervisor.lifecycle.supervised.follow_always`)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import anyio
from rich.console import Console

from loon_supervisor.config.model import DeploymentSettings
from loon_supervisor.engine.client import open_engine
from loon_supervisor.engine.containers import CRASH_LOOP_LABEL, URL_LABEL, parse_crash_loop
from loon_supervisor.engine.records import ContainerInfo
from loon_supervisor.lifecycle import state as statefile
from loon_supervisor.lifecycle.logger_process import start_logger
from loon_supervisor.lifecycle.state import DeploymentLock, DeploymentState, lock_holder
from loon_supervisor.paths import build_files_dir, logs_dir
from loon_supervisor.sinks import retention
from loon_supervisor.sinks.session import new_session_dir
from loon_supervisor.streams.sources.choice import from_container


def crash_loop_of(labels: dict[str, str]) -> tuple[int, float]:
    """The crash-loop rule the container was started with (its label), else the default
    one: a re-attached logger without a state file used to lose crash-loop reports."""
    rule = parse_crash_loop(labels.get(CRASH_LOOP_LABEL))
    if rule is not None:
        return rule
    fields = DeploymentSettings.model_fields
    return int(fields["crashLoopRestarts"].default), float(fields["crashLoopWindow"].default)


async def attach(name: str, console: Console) -> int:
    lock = DeploymentLock.acquire(name)
    if lock is None:
        console.print(f"deployment '{name}' is already followed (pid {lock_holder(name)})")
        return 0
    try:
        state = statefile.load(name)
        async with open_engine() as engine:
            found = [c for c in await engine.list_ours(name) if c.running]
            if not found:
                console.print(f"no running container of deployment '{name}': start it with "
                              "`python3 build.py` (or `loon up`)")
                return 1
            cid = found[0].id
            if state is None or state.cid != cid:
                console.print("no logger state for this container: starting a new session")
                info = await engine.inspect(cid) or ContainerInfo()
                labels = info.labels
                contract = await engine.read_contract(info.image)
                session = new_session_dir(logs_dir())
                await anyio.to_thread.run_sync(
                    retention.run_pass, logs_dir(), build_files_dir(), retention.limits_for(),
                    session, lambda line: console.print(line, markup=False),
                    lambda _line: None)
                state = DeploymentState(
                    name=name, cid=cid, session=session,
                    image=contract.image, services=contract.services,
                    log_dir=contract.log_dir, status_command=contract.status_command,
                    url=labels.get(URL_LABEL, ""),
                    stop_timeout=info.stop_timeout or 10,
                    crash_loop=crash_loop_of(labels),
                    log_source=from_container(info, contract.log_dir).kind,
                    log_backups=contract.log_backups)
        state = replace(state, foreground_pid=None)
        proc, ok = await start_logger(state, lock)
        if not ok:
            console.print(f"the logger did not attach; see {state.session / 'logger.stderr'}")
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            return 1
        sizes = ", ".join(f"{s} at byte {(state.session / f'{s}.log').stat().st_size}"
                          for s in state.services if (state.session / f"{s}.log").exists())
        console.print(f"re-attached (logger pid {proc.pid}) into {state.session}: {sizes}")
        return 0
    finally:
        lock.release()


@dataclass(frozen=True)
class AttachOptions:
    """``loon attach``: the deployment; ``wait`` follows in the foreground for a service manager."""

    name: str
    wait: bool = False


async def run(opts: AttachOptions) -> int:
    if opts.wait:
        from loon_supervisor.lifecycle.supervised import follow_always

        return await follow_always(opts.name, Console(soft_wrap=True))
    return await attach(opts.name, Console(soft_wrap=True))
