"""``loon status``: one look at the deployment, its services and its logger."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from loon_supervisor.engine.client import open_engine
from loon_supervisor.engine.endpoint import resolve_endpoint
from loon_supervisor.engine.images import parse_status
from loon_supervisor.errors import LoonError
from loon_supervisor.lifecycle import state as statefile
from loon_supervisor.lifecycle.crashloop import read_verdicts
from loon_supervisor.lifecycle.state import lock_holder
from loon_supervisor.paths import build_files_dir, logs_dir
from loon_supervisor.sinks import retention
from loon_supervisor.sinks.session import latest_session
from loon_supervisor.spec.client import absent_message, client_absence
from loon_supervisor.streams.source_choice import from_container, recorded

HEALTHY, UNHEALTHY, NOT_RUNNING = 0, 1, 3
MINIO_ABSENT_STATUS = ("WARNING: MinIO is not in this image (MINIO_ENABLED=false): uploaded "
                       "files go to Django's file-system storage, not MinIO buckets "
                       "(docs/real-loon.md)")


def _uptime(started: str) -> str:
    try:
        since = datetime.fromisoformat(started[:26].rstrip("Z") + "+00:00")
    except ValueError:
        return "?"
    secs = int((datetime.now(UTC) - since).total_seconds())
    return f"{secs // 3600}h{secs % 3600 // 60:02d}m{secs % 60:02d}s"


def _log_usage(console: Console, config_file: Path | None) -> tuple[str, str | None]:
    """The host logs' usage line and its warning, if any."""
    use = retention.measure(logs_dir(), build_files_dir(), retention.limits_for(config_file))
    return use.summary(), use.warning()


async def show_status(name: str, config_file: Path | None = None) -> int:
    console = Console(soft_wrap=True)
    from loon_supervisor.swarm.verbs import swarm_status

    swarm = await swarm_status(name, console)
    if swarm is not None:
        return swarm
    state = statefile.load(name)
    async with open_engine() as engine:
        found = await engine.list_ours(name)
        running = [c for c in found if c.get("State") == "running"]
        if not running:
            console.print(f"deployment '{name}': not running"
                          + (f" (container {found[0].get('State')})" if found else ""))
            used, warning = _log_usage(console, config_file)
            console.print(f"host logs: {used}", markup=False, highlight=False)
            if warning:
                console.print(f"WARNING: {warning}", markup=False, highlight=False)
            return NOT_RUNNING
        cid = running[0]["Id"]
        info = await engine.inspect(cid) or {}
        image = (info.get("Config") or {}).get("Image", "")
        contract = await engine.read_contract(image)
        states: dict[str, str] = {}
        if contract.status_command:
            try:
                _, out = await engine.run_capture(cid, ["sh", "-c", contract.status_command])
                states = {n: st for n, st, _ in parse_status(out, contract.services)}
            except LoonError as exc:
                console.print(f"status command failed: {exc}")
        client_absent = await client_absence(engine, cid, contract.services)
    ours = state is not None and state.cid == cid
    session = str(state.session) if state is not None and ours else None
    session_dir = latest_session(logs_dir()) if session is None else None
    holder = lock_holder(name)  # decided by the lock: a stale pid never passes as alive
    logger_pid = holder
    logger_ok = holder is not None
    foreground = logger_ok and state is not None and ours and state.foreground_pid == holder

    top = Table(show_header=False, box=None)
    top.add_row("deployment", name)
    top.add_row("container", f"{cid[:12]} running, up {_uptime(info['State']['StartedAt'])}")
    top.add_row("image", image)
    top.add_row("engine", resolve_endpoint().describe())
    if state is not None and ours and state.url:
        top.add_row("url", state.url)
    top.add_row("logs", str(session or session_dir or "?"))
    top.add_row("log source", (recorded(state.log_source, build_files_dir(), name) if ours
                               and state is not None else
                               from_container(info, contract.log_dir)).describe())
    top.add_row("logger", f"foreground pid {logger_pid}" if foreground else
                f"alive (pid {logger_pid})" if logger_ok else
                "not running (dead: `loon attach` resumes it)")
    used, log_warning = _log_usage(console, config_file)
    top.add_row("host logs", used)
    console.print(top)

    table = Table("service", "state", "log file", "size")
    base = session or (str(session_dir) if session_dir else None)
    healthy = True
    looping = read_verdicts(Path(base) if base else None)
    for svc in contract.services:
        st = states.get(svc, "unknown" if contract.status_command else "-")
        if contract.status_command and st != "RUNNING":
            healthy = False
        if svc in looping:
            st = f"crash-looping ({looping[svc]} restarts, {st})"
            healthy = False
        path = Path(base) / f"{svc}.log" if base else None
        size = f"{path.stat().st_size:,} B" if path and path.exists() else "-"
        table.add_row(svc, st, str(path) if path else "-", size)
    console.print(table)
    env = dict(e.split("=", 1) for e in (info.get("Config") or {}).get("Env") or [] if "=" in e)
    if env.get("VITE_ENVIRONMENT") == "production" and "minio" not in contract.services:
        console.print(MINIO_ABSENT_STATUS, markup=False, highlight=False)
    if client_absent:
        console.print(absent_message(client_absent), markup=False, highlight=False)
    if log_warning:
        console.print(f"WARNING: {log_warning}", markup=False, highlight=False)
    if ours and not logger_ok:
        healthy = False
    return HEALTHY if healthy else UNHEALTHY


def main(name: str, config_file: Path | None = None) -> int:
    from loon_supervisor.verbs.dispatch import run_sync

    return run_sync(show_status, name, config_file)
