"""A state for a running container of the deployment that no state file describes (its
follower died and the file went, or another machine started it): ``attach`` and
``attach --wait`` follow it in a new session, with what its labels and image say."""

from __future__ import annotations

import anyio

from loon_supervisor.config.model import DeploymentSettings
from loon_supervisor.engine.base import Engine
from loon_supervisor.engine.containers import CRASH_LOOP_LABEL, URL_LABEL, parse_crash_loop
from loon_supervisor.engine.records import ContainerInfo
from loon_supervisor.lifecycle.state import DeploymentState
from loon_supervisor.paths import build_files_dir, logs_dir
from loon_supervisor.sinks import retention
from loon_supervisor.sinks.reporter import Reporter
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


async def new_state(engine: Engine, name: str, cid: str, say: Reporter
                    ) -> DeploymentState:
    """The state (and a new session, after a retention pass) for running container
    ``cid``, read from the container and its image's contract."""
    info = await engine.inspect(cid) or ContainerInfo()
    labels = info.labels
    contract = await engine.read_contract(info.image)
    session = new_session_dir(logs_dir())
    await anyio.to_thread.run_sync(
        retention.run_pass, logs_dir(), build_files_dir(), retention.limits_for(), session,
        say, lambda _line: None)
    return DeploymentState(
        name=name, cid=cid, session=session, image=contract.image,
        services=contract.services, log_dir=contract.log_dir,
        status_command=contract.status_command, url=labels.get(URL_LABEL, ""),
        stop_timeout=info.stop_timeout or 10, crash_loop=crash_loop_of(labels),
        log_source=from_container(info, contract.log_dir).kind,
        log_backups=contract.log_backups)
