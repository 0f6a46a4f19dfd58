"""``loon status``: one look at the deployment, its services and its logger."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from loon_supervisor.engine.client import open_engine
from loon_supervisor.engine.endpoint import resolve_endpoint
from loon_supervisor.engine.images import parse_status
from loon_supervisor.engine.records import ContainerInfo, node_labels
from loon_supervisor.errors import LoonError
from loon_supervisor.lifecycle import state as statefile
from loon_supervisor.lifecycle.crashloop import read_verdicts
from loon_supervisor.lifecycle.state import lock_holder
from loon_supervisor.paths import build_files_dir, logs_dir
from loon_supervisor.sinks import retention
from loon_supervisor.sinks.session import latest_session
from loon_supervisor.spec.client import absent_message, client_absence
from loon_supervisor.streams.sources.choice import from_container, recorded

HEALTHY, UNHEALTHY, NOT_RUNNING = 0, 1, 3
MINIO_ABSENT_STATUS = ("WARNING: MinIO is not in this image (MINIO_ENABLED=false): uploads "
                       "are unavailable (Loon's upload flow needs an S3-compatible store); "
                       "files the server writes itself go to Django's file-system storage "
                       "(docs/real-loon.md)")


def _uptime(started: str) -> str:
    try:
        since = datetime.fromisoformat(started[:26].rstrip("Z") + "+00:00")
    except ValueError:
        return "?"
    secs = int((datetime.now(UTC) - since).total_seconds())
    return f"{secs // 3600}h{secs % 3600 // 60:02d}m{secs % 60:02d}s"


def _log_usage(config_file: Path | None) -> tuple[str, str | None]:
    """The host logs' usage line and its warning, if any."""
    use = retention.measure(logs_dir(), build_files_dir(), retention.limits_for(config_file))
    return use.summary(), use.warning()


@dataclass
class ServiceRow:
    """One service as ``loon status`` (and the dashboard) shows it."""

    name: str
    state: str  # the status command's word, "unknown", or "-" without a status command
    restarts: int | None  # set when crash-looping (read_verdicts)
    log_path: Path | None
    log_bytes: int | None

    @property
    def shown_state(self) -> str:
        if self.restarts is not None:
            return f"crash-looping ({self.restarts} restarts, {self.state})"
        return self.state


@dataclass
class StatusReport:
    """What ``loon status`` knows, gathered once; printed by :func:`show_status` and
    rendered by the dashboard (loon_supervisor.dashboard), so they never disagree."""

    name: str
    running: bool
    container_state: str | None = None  # when not running: the stopped container's state
    cid: str = ""
    uptime: str = ""
    image: str = ""
    engine: str = ""
    url: str | None = None
    logs: str = "?"
    log_source: str = ""
    logger: str = ""
    logger_ok: bool = False
    ours: bool = False
    host_logs: str = ""
    log_warning: str | None = None
    status_error: str | None = None
    services: list[ServiceRow] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # MinIO / client absence
    store: str | None = None  # the external S3 store uploads go to, when there is one
    healthy: bool = True

    @property
    def exit_code(self) -> int:
        if not self.running:
            return NOT_RUNNING
        return HEALTHY if self.healthy else UNHEALTHY


LEFT_OUT = "not run (left out by --only or loon dev)"


def left_out(service: str, state: str, chosen: tuple[str, ...] | None) -> str:
    """The state to show: a service this run did not start (``loon dev`` runs no nginx)
    says so instead of ``unknown`` or ``STOPPED``; it still counts as not RUNNING."""
    if chosen is not None and service not in chosen and state != "RUNNING":
        return LEFT_OUT
    return state


async def gather_status(name: str, config_file: Path | None = None) -> StatusReport:
    """Ask the engine, the state file, the lock and the logs; print nothing."""
    state = statefile.load(name)
    async with open_engine() as engine:
        found = await engine.list_ours(name)
        running = [c for c in found if c.running]
        if not running:
            used, warning = _log_usage(config_file)
            return StatusReport(name, False, container_state=found[0].state or None if found
                                else None, host_logs=used, log_warning=warning)
        cid = running[0].id
        info = await engine.inspect(cid) or ContainerInfo()
        image = info.image
        contract = await engine.read_contract(image)
        states: dict[str, str] = {}
        status_error = None
        if contract.status_command:
            try:
                _, out = await engine.run_capture(cid, ["sh", "-c", contract.status_command])
                states = {n: st for n, st, _ in parse_status(out, contract.services)}
            except LoonError as exc:
                status_error = f"status command failed: {exc}"
        client_absent = await client_absence(engine, cid, contract.services)
    ours = state is not None and state.cid == cid
    session = str(state.session) if state is not None and ours else None
    session_dir = latest_session(logs_dir()) if session is None else None
    holder = lock_holder(name)  # decided by the lock: a stale pid never passes as alive
    logger_ok = holder is not None
    foreground = logger_ok and state is not None and ours and state.foreground_pid == holder
    used, log_warning = _log_usage(config_file)
    report = StatusReport(
        name, True, cid=cid, uptime=_uptime(info.started_at or ""), image=image,
        engine=resolve_endpoint().describe(),
        url=state.url if state is not None and ours and state.url else None,
        logs=str(session or session_dir or "?"),
        log_source=(recorded(state.log_source, build_files_dir(), name) if ours
                    and state is not None else
                    from_container(info, contract.log_dir)).describe(),
        logger=f"foreground pid {holder}" if foreground else
        f"alive (pid {holder})" if logger_ok else
        "not running (dead: `loon attach` resumes it)",
        logger_ok=logger_ok, ours=ours, host_logs=used, log_warning=log_warning,
        status_error=status_error)
    base = session or (str(session_dir) if session_dir else None)
    looping = read_verdicts(Path(base) if base else None)
    chosen = state.services if state is not None and ours else None
    for svc in contract.services:
        st = left_out(svc, states.get(svc, "unknown" if contract.status_command else "-"),
                      chosen)
        if contract.status_command and st != "RUNNING":
            report.healthy = False
        if svc in looping:
            report.healthy = False
        path = Path(base) / f"{svc}.log" if base else None
        size = path.stat().st_size if path and path.exists() else None
        report.services.append(ServiceRow(svc, st, looping.get(svc), path, size))
    env = info.env
    if env.get("LOON_S3_EXTERNAL") == "true":
        report.store = (f"external S3-compatible store {env.get('LOON_S3_ENDPOINT_URL', '?')}, "
                        f"bucket {env.get('MINIO_STORAGE_MEDIA_BUCKET_NAME', '?')} (uploads)")
    elif env.get("VITE_ENVIRONMENT") == "production" and "minio" not in contract.services:
        report.warnings.append(MINIO_ABSENT_STATUS)
    if client_absent:
        report.warnings.append(absent_message(client_absent))
    if ours and not logger_ok:
        report.healthy = False
    return report


async def show_status(name: str, config_file: Path | None = None) -> int:
    console = Console(soft_wrap=True)
    swarm = await swarm_status(name, console)
    if swarm is not None:
        return swarm
    r = await gather_status(name, config_file)
    if not r.running:
        console.print(f"deployment '{name}': not running"
                      + (f" (container {r.container_state})" if r.container_state else ""))
        console.print(f"host logs: {r.host_logs}", markup=False, highlight=False)
        if r.log_warning:
            console.print(f"WARNING: {r.log_warning}", markup=False, highlight=False)
        return r.exit_code
    if r.status_error:
        console.print(r.status_error)
    top = Table(show_header=False, box=None)
    top.add_row("deployment", name)
    top.add_row("container", f"{r.cid[:12]} running, up {r.uptime}")
    top.add_row("image", r.image)
    top.add_row("engine", r.engine)
    if r.url:
        top.add_row("url", r.url)
    top.add_row("logs", r.logs)
    top.add_row("log source", r.log_source)
    top.add_row("logger", r.logger)
    top.add_row("host logs", r.host_logs)
    if r.store:
        top.add_row("object store", r.store)
    console.print(top)

    table = Table("service", "state", "log file", "size")
    for row in r.services:
        size = f"{row.log_bytes:,} B" if row.log_bytes is not None else "-"
        table.add_row(row.name, row.shown_state, str(row.log_path) if row.log_path else "-",
                      size)
    console.print(table)
    for warning in r.warnings:
        console.print(warning, markup=False, highlight=False)
    if r.log_warning:
        console.print(f"WARNING: {r.log_warning}", markup=False, highlight=False)
    return r.exit_code


async def swarm_status(name: str, console: Console) -> int | None:
    """A table of tasks per service with node and state; None when not a swarm deployment.
    Exit code: 0 when every service runs its replicas, else 1."""
    async with open_engine() as engine:
        swarm = engine.swarm
        if not await swarm.active():
            return None
        found = await swarm.ours(name)
        if not found:
            return None
        nodes = node_labels(await swarm.nodes())
        table = Table("service", "slot", "task", "node", "state", "desired")
        healthy = True
        for service in sorted(found, key=lambda s: s.name):
            svc = service.name
            running = 0
            for t in sorted(await swarm.tasks(svc), key=lambda t: t.slot or 0):
                if t.running:
                    running += 1
                table.add_row(svc, "" if t.slot is None else str(t.slot), t.id[:12],
                              nodes.get(t.node_id, "?"), t.state, t.desired_state)
            healthy = healthy and running >= service.replicas
        console.print(f"deployment '{name}': swarm services")
        console.print(table)
    console.print(_swarm_follower(name), markup=False, highlight=False)
    return 0 if healthy else 1


def _swarm_follower(name: str) -> str:
    """Who writes the tasks' files, from the lock (never a stale pid) and the state."""
    holder = lock_holder(name)
    state = statefile.load(name)
    where = f" into {state.session}" if state is not None and state.swarm else ""
    if holder:
        return f"task logs: followed by pid {holder}{where}"
    if state is not None and state.swarm:
        return (f"task logs: nobody follows them now (its logger is gone); `loon attach` "
                f"continues each file{where} where it stopped")
    return "task logs: nobody follows them from this project"


@dataclass(frozen=True)
class StatusOptions:
    """``loon status``: the deployment, and the config it was deployed with if given."""

    name: str
    config_file: Path | None = None


async def run(opts: StatusOptions) -> int:
    return await show_status(opts.name, opts.config_file)
