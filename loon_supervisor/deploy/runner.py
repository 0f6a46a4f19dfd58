"""Deploys: one at a time, each with an id, a status and its own log directory.

A deploy is a :data:`DeployStep` run by :class:`DeployRunner`. The real step,
:func:`supervisor_deploy_step`, runs the ``loon`` entry point as child processes (no shell):
optionally ``git pull --ff-only`` of the configured branch, then ``up -d --replace``, which
builds while the old version serves, backs up, swaps, checks health and rolls back on its own
(docs/upgrades.md). The child says each phase as a line ``phase: <name>``; the record shows
the latest (``building``, ``backing up``, ``swapping``, ``checking health``, ``rolled
back``) in ``GET /deploy/<id>``. A step
reports failure by raising :class:`DeployStepFailed` with an operator-facing reason; tests
swap in their own steps.

Each deploy writes ``<logs root>/<id>/``: ``deploy.log`` (the steps, git's output and what
the supervisor printed while the step ran), ``status.json`` (the status as served by
``GET /deploy/<id>``).
"""

from __future__ import annotations

import contextlib
import enum
import json
import logging
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import anyio
from anyio.abc import TaskGroup

from loon_supervisor.deploy.children import run_grouped
from loon_supervisor.deploy.session_prune import prune_sessions
from loon_supervisor.sinks.session import event_lines
from loon_supervisor.versions.reference import CHILD_ENV

log = logging.getLogger("loon_supervisor.deploy")

GIT_TIMEOUT_S = 300
KEEP_RECORDS = 50


class DeployStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class DeployStepFailed(Exception):
    """Raised by a deploy step; ``reason`` is shown by ``GET /deploy/<id>``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def new_deploy_id() -> str:
    """Sortable and unguessable: ``20250101T120000Z-1a2b3c4d``."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(4)


DEPLOY_ID_PATTERN = r"[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}"


@dataclass
class DeployRecord:
    id: str
    log_dir: Path
    status: DeployStatus = DeployStatus.QUEUED
    reason: str | None = None
    created_at: str = field(default_factory=_now)
    started_at: str | None = None
    finished_at: str | None = None
    phase: str | None = None
    health: str | None = None  # the health gate's decision, naming the check that decided
    image: str | None = None  # the version the request named (versions/reference.py)

    @property
    def active(self) -> bool:
        return self.status in (DeployStatus.QUEUED, DeployStatus.RUNNING)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": str(self.status),
            "reason": self.reason,
            "createdAt": self.created_at,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "phase": self.phase,
            "health": self.health,
            "image": self.image,
            "logDir": str(self.log_dir),
        }


class DeployLog:
    """``deploy.log``: timestamped lines, flushed at once (an operator may be tailing it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: TextIO | None = None

    def open(self) -> None:
        """Raises DeployStepFailed (never OSError): with no descriptor left, a full disk or
        a permission error the deploy fails with the reason and the server keeps serving."""
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as exc:
            raise DeployStepFailed(f"cannot open the deploy's log {self.path}: "
                                   f"{exc.strerror or exc}") from None
        self._fh = os.fdopen(fd, "a", encoding="utf-8", errors="replace", buffering=1)

    def close(self) -> None:
        if self._fh:
            with contextlib.suppress(OSError):
                self._fh.close()
            self._fh = None

    def line(self, text: str) -> None:
        self.raw(event_lines(text.rstrip("\n")))

    def raw(self, text: str) -> None:
        if self._fh is None:
            return
        try:
            self._fh.write(text)
            self._fh.flush()
        except OSError as exc:  # e.g. the disk filled up: stop writing, keep deploying
            log.warning("cannot write %s (%s); its further lines are dropped", self.path,
                        exc.strerror or exc)
            self.close()


@dataclass
class DeployContext:
    """What a step needs; ``log`` writes to the deploy's deploy.log."""

    deploy_id: str
    log_dir: Path
    config_file: Path
    repo_dir: Path
    git_branch: str | None
    log: Callable[[str], None]
    kill_grace: float = 10.0
    cleanup_timeout: float = 120.0
    rollback_grace: float = 600.0  # a stopped `up` rolling back after the swap
    on_phase: Callable[[str], None] = lambda phase: None
    on_health: Callable[[str], None] = lambda sentence: None
    image: str | None = None  # deploy this version (a registry reference) instead of building
    phase: str | None = None
    rolled_back: str | None = None  # why, when the new version was rolled back

    def set_phase(self, phase: str) -> None:
        if phase != self.phase:
            self.phase = phase
            self.log(f"phase: {phase}")
            self.on_phase(phase)

    def child_line(self, line: str) -> None:
        """A line of a loon child's output: into deploy.log, and the phase it names."""
        self.log(line)
        text = line.strip()
        if text.startswith("phase: "):
            self.phase = text[len("phase: "):]
            self.on_phase(self.phase)
        elif text.startswith(("health gate passed", "health gate failed")):
            self.on_health(text)
        elif text.startswith("rolling back from ") and ": " in text:
            self.rolled_back = text.split(": ", 1)[1]


DeployStep = Callable[[DeployContext], Awaitable[None]]


class NotActive(Exception):
    """DELETE of a deploy that has already finished."""


class DeployBusy(Exception):
    def __init__(self, running: DeployRecord) -> None:
        super().__init__(f"deploy {running.id} is {running.status}")
        self.running = running


def _write_status(record: DeployRecord) -> None:
    path = record.log_dir / "status.json"
    tmp = path.with_name(".status.json.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(record.to_json(), indent=2) + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("cannot write %s: %s", path, exc)


class DeployRunner:
    """Accepts deploys one at a time and runs them in its own task group.

    Use as an async context manager; leaving it cancels a deploy still running (recorded as
    failed: the server stopped).
    """

    def __init__(self, *, logs_root: Path, config_file: Path, repo_dir: Path,
                 git_branch: str | None, step: DeployStep | None = None,
                 deploy_timeout: float = 1800.0, kill_grace: float = 10.0,
                 keep: int = KEEP_RECORDS) -> None:
        self.keep = keep
        self.deploy_timeout = deploy_timeout
        self.kill_grace = kill_grace
        self.logs_root = logs_root
        self.config_file = config_file
        self.repo_dir = repo_dir
        self.git_branch = git_branch
        self.step: DeployStep = step or supervisor_deploy_step
        self._records: OrderedDict[str, DeployRecord] = OrderedDict()
        self._current: DeployRecord | None = None
        self._tg: TaskGroup | None = None
        self._scopes: dict[str, anyio.CancelScope] = {}

    def cancel(self, deploy_id: str, by: str = "DELETE") -> DeployRecord | None:
        """Stop a queued or running deploy (its step kills its child processes and cleans
        up); None when there is no such deploy; NotActive when it has finished. ``by`` goes
        into the reason (the dashboard names the person)."""
        record = self._records.get(deploy_id)
        if record is None:
            return None
        scope = self._scopes.get(deploy_id)
        if not record.active or scope is None:
            raise NotActive(deploy_id)
        record.reason = f"cancelled by {by}"
        scope.cancel()
        return record

    def _load(self) -> None:
        """Records survive restarts: read every ``<id>/status.json``; a deploy the previous
        server left queued or running is recorded as failed."""
        pattern = re.compile(DEPLOY_ID_PATTERN)
        def age(path: Path) -> tuple[str, int]:
            # Ids sort by second only; one deploy runs at a time, so the last write to its
            # status.json orders deploys of the same second.
            return (path.parent.name[:16], path.stat().st_mtime_ns)

        for path in sorted(self.logs_root.glob("*/status.json"), key=age):
            if not pattern.fullmatch(path.parent.name):
                continue
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                record = DeployRecord(
                    id=path.parent.name, log_dir=path.parent,
                    status=DeployStatus(data["status"]), reason=data.get("reason"),
                    created_at=data.get("createdAt") or _now(),
                    started_at=data.get("startedAt"), finished_at=data.get("finishedAt"),
                    phase=data.get("phase"), health=data.get("health"))
            except (OSError, ValueError, KeyError, TypeError):
                log.warning("ignoring unreadable %s", path)
                continue
            if record.active:
                record.status = DeployStatus.FAILED
                record.reason = "the deploy server stopped while this deploy was running"
                record.finished_at = record.finished_at or _now()
                _write_status(record)
            self._records[record.id] = record

    def _prune(self) -> None:
        """Keep the newest ``keep`` deploys (records and directories), in creation order."""
        for deploy_id in list(self._records)[:-self.keep]:
            record = self._records[deploy_id]
            if record.active:
                continue
            del self._records[deploy_id]
            prune_sessions(record.log_dir)  # its logs/logs_<time> session (not the latest)
            shutil.rmtree(record.log_dir, ignore_errors=True)

    async def __aenter__(self) -> DeployRunner:
        self._load()
        self._prune()
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> bool | None:
        assert self._tg is not None
        self._tg.cancel_scope.cancel()
        try:
            # The deploy tasks catch every error themselves; passing no exception keeps the
            # caller's own exception (if any) unwrapped instead of in an ExceptionGroup.
            await self._tg.__aexit__(None, None, None)
        finally:
            self._tg = None
        return None

    @property
    def current(self) -> DeployRecord | None:
        return self._current if self._current and self._current.active else None

    def get(self, deploy_id: str) -> DeployRecord | None:
        return self._records.get(deploy_id)

    def submit(self, image: str | None = None) -> DeployRecord:
        """Queue a deploy now, or raise DeployBusy; no await between check and claim.
        ``image``: a version the request named, already checked (it replaces the build)."""
        if self._tg is None:
            raise RuntimeError("DeployRunner is not running (use 'async with')")
        if self.current is not None:
            raise DeployBusy(self.current)
        deploy_id = new_deploy_id()
        record = DeployRecord(id=deploy_id, log_dir=self.logs_root / deploy_id, image=image)
        record.log_dir.mkdir(mode=0o700, parents=True, exist_ok=False)
        self._current = record
        self._records[deploy_id] = record
        self._prune()
        _write_status(record)
        self._scopes[deploy_id] = anyio.CancelScope()
        self._tg.start_soon(self._execute, record, name=f"deploy {deploy_id}")
        return record

    async def _execute(self, record: DeployRecord) -> None:
        sink = DeployLog(record.log_dir / "deploy.log")
        scope = self._scopes[record.id]
        try:
            sink.open()  # inside the try: a deploy that cannot start fails, the server stays
            record.status = DeployStatus.RUNNING
            record.started_at = _now()
            _write_status(record)
            log.info("deploy %s started (log directory %s)", record.id, record.log_dir)
            sink.line(f"deploy {record.id} started; config file {self.config_file}")
            ctx = DeployContext(deploy_id=record.id, log_dir=record.log_dir,
                                config_file=self.config_file, repo_dir=self.repo_dir,
                                git_branch=self.git_branch, log=sink.line,
                                kill_grace=self.kill_grace,
                                cleanup_timeout=min(self.deploy_timeout, 120.0),
                                rollback_grace=min(self.deploy_timeout, 600.0),
                                on_phase=lambda phase: self._phase(record, phase),
                                on_health=lambda text: self._health(record, text),
                                image=record.image)
            with scope:
                with anyio.fail_after(self.deploy_timeout):
                    await self.step(ctx)
            if scope.cancelled_caught:
                self._finish(record, sink, DeployStatus.CANCELLED,
                             record.reason or "cancelled by DELETE")
            else:
                self._finish(record, sink, DeployStatus.SUCCEEDED, None)
        except TimeoutError:
            self._finish(record, sink, DeployStatus.FAILED,
                         f"did not finish within the deploy timeout of {self.deploy_timeout:g} s")
        except DeployStepFailed as exc:
            self._finish(record, sink, DeployStatus.FAILED, exc.reason)
        except anyio.get_cancelled_exc_class():
            self._finish(record, sink, DeployStatus.FAILED,
                         "the deploy server stopped while this deploy was running")
            raise
        except Exception as exc:  # a bug or an unexpected engine error: report, keep serving
            log.exception("deploy %s crashed", record.id)
            self._finish(record, sink, DeployStatus.FAILED,
                         f"unexpected error: {type(exc).__name__}: {exc}")
        finally:
            sink.close()
            self._scopes.pop(record.id, None)
            if self._current is record:
                self._current = None  # the lock is released on every path

    @staticmethod
    def _phase(record: DeployRecord, phase: str) -> None:
        record.phase = phase
        _write_status(record)

    @staticmethod
    def _health(record: DeployRecord, sentence: str) -> None:
        if record.health is None or "failed" in sentence:  # the new version's gate decides
            record.health = sentence
            _write_status(record)

    def _finish(self, record: DeployRecord, sink: DeployLog, status: DeployStatus,
                reason: str | None) -> None:
        record.status = status
        record.reason = reason
        record.finished_at = _now()
        _write_status(record)
        if reason:
            sink.line(f"deploy {record.id} {status}: {reason}")
            log.warning("deploy %s %s: %s", record.id, status, reason)
        else:
            sink.line(f"deploy {record.id} {status}")
            log.info("deploy %s %s", record.id, status)


# --- the real step ---------------------------------------------------------------------


async def _git(ctx: DeployContext, *args: str) -> tuple[int, str, str]:
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0", LC_ALL="C")
    cmd = ["git", "-C", str(ctx.repo_dir), *args]
    ctx.log("$ " + " ".join(cmd))
    try:
        with anyio.fail_after(GIT_TIMEOUT_S):
            code, stdout, stderr = await run_grouped(cmd, env=env, grace=ctx.kill_grace)
    except FileNotFoundError:
        raise DeployStepFailed("git is not installed on the deploy host") from None
    except TimeoutError:
        raise DeployStepFailed(f"git {args[0]} did not finish within {GIT_TIMEOUT_S} s") from None
    except OSError as exc:  # e.g. no descriptor left for its pipes
        raise DeployStepFailed(f"cannot start git {args[0]}: {exc.strerror or exc}") from None
    out = stdout.decode("utf-8", "replace")
    err = stderr.decode("utf-8", "replace")
    for text in (out, err):
        if text.strip():
            ctx.log(text)
    return code, out.strip(), err.strip()


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "no message"


async def update_working_copy(ctx: DeployContext) -> None:
    """``git pull --ff-only origin <branch>`` in the project's working copy.

    The working copy must already be on that branch: pulling a branch into another one
    would merge them. Any failure fails the deploy with git's last message.
    """
    branch = ctx.git_branch
    assert branch is not None
    rc, head, err = await _git(ctx, "rev-parse", "--abbrev-ref", "HEAD")
    if rc != 0:
        raise DeployStepFailed(f"git cannot read the working copy {ctx.repo_dir}: "
                               f"{_last_line(err)}")
    if head != branch:
        raise DeployStepFailed(f"the working copy {ctx.repo_dir} is on branch {head!r}, not "
                               f"{branch!r}; check out {branch} there once by hand")
    rc, _, err = await _git(ctx, "pull", "--ff-only", "origin", branch)
    if rc != 0:
        raise DeployStepFailed(f"git pull of branch {branch} failed (exit code {rc}): "
                               f"{_last_line(err)}")


async def _stream(ctx: DeployContext, stream: Any) -> None:
    """Copy a child's output into deploy.log line by line as it comes."""
    pending = b""
    async for chunk in stream:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            ctx.child_line(line.decode("utf-8", "replace"))
    if pending:
        ctx.child_line(pending.decode("utf-8", "replace"))


async def _kill_group(proc: Any, grace: float) -> None:
    """SIGTERM to the child's process group, SIGKILL after ``grace`` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with anyio.move_on_after(wait):
            await proc.wait()
            return


async def _let_it_roll_back(ctx: DeployContext, proc: Any, stdout: Any) -> None:
    """`up --replace` stopped after the swap rolls back to the previous version (SIGTERM
    asks it to, unless it is rolling back already): give it ``rollback_grace`` seconds, its
    lines read on (they say the phase it reaches), before the usual kill."""
    ctx.log("stopped after the swap: the previous version is started again (waiting up to "
            f"{ctx.rollback_grace:g} s)")
    async with anyio.create_task_group() as tg:
        tg.start_soon(_stream, ctx, stdout)
        if ctx.rolled_back is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        with anyio.move_on_after(ctx.rollback_grace):
            await proc.wait()
        if proc.returncode is None:
            await _kill_group(proc, ctx.kill_grace)
        tg.cancel_scope.deadline = anyio.current_time() + 5  # its last lines, then EOF


async def run_loon(ctx: DeployContext, *args: str, env: dict[str, str] | None = None) -> int:
    """``loon <args>`` as a child process in its own process group (so a cancel or timeout
    can stop it and everything it started), its output streamed to deploy.log; ``env``
    adds to the server's environment."""
    cmd = [sys.executable, "-m", "loon_supervisor", *args]
    ctx.log("$ " + " ".join([*(f"{k}={v}" for k, v in (env or {}).items()), "loon", *args]))
    env = dict(os.environ, NO_COLOR="1", TERM="dumb", **(env or {}))
    try:
        proc = await anyio.open_process(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, start_new_session=True,
                                        env=env)
    except OSError as exc:  # e.g. no descriptor left for its pipes
        raise DeployStepFailed(f"cannot start loon {args[0]}: {exc.strerror or exc}") from None
    try:
        assert proc.stdout is not None
        await _stream(ctx, proc.stdout)
        return await proc.wait()
    finally:
        with anyio.CancelScope(shield=True):
            if proc.returncode is None:  # cancelled, timed out or the server stops
                ctx.log(f"stopping loon {args[0]} (pid {proc.pid}) and its process group")
                if (ctx.phase in GATE_PHASES or ctx.rolled_back) and proc.stdout is not None:
                    await _let_it_roll_back(ctx, proc, proc.stdout)
                else:
                    await _kill_group(proc, ctx.kill_grace)
            await proc.aclose()


SERVING_PHASES = (None, "building", "backing up")  # the old version is untouched in these
# After the swap, before the new version passed its gate: a stopped `up` rolls back.
GATE_PHASES = ("swapping", "checking health")


async def supervisor_deploy_step(ctx: DeployContext) -> None:
    """Optionally update the working copy, then ``up -d --replace`` (build first, backup,
    swap, health gate, rollback), as a child process. Stopped early (cancel, timeout, server
    stop) before the swap, nothing was stopped and the old version keeps serving; stopped
    during or after the swap, it makes sure no half-started container is left, with
    ``loon down`` bounded by the deploy timeout."""
    config = str(ctx.config_file)
    try:
        ctx.set_phase("building")
        if ctx.image:
            ctx.log(f"deploying the named version {ctx.image} (pulled; no git pull, no build)")
        elif ctx.git_branch:
            ctx.log(f"updating the working copy from branch {ctx.git_branch}")
            await update_working_copy(ctx)
        ctx.log("starting the deployment (detached): build first, then swap")
        rc = await run_loon(ctx, "up", "-d", "--replace", "-c", config,
                            env={CHILD_ENV: ctx.image} if ctx.image else None)
    except anyio.get_cancelled_exc_class():
        if ctx.phase in SERVING_PHASES:
            ctx.log("stopped before the swap: nothing was stopped, the running version "
                    "(if any) keeps serving")
            raise
        if ctx.rolled_back is not None:
            ctx.log(f"stopped after the swap: rolled back ({ctx.rolled_back}); the previous "
                    "version serves again" if ctx.phase == "rolled back" else
                    "stopped during the rollback: check with `loon status`")
            raise
        with anyio.CancelScope(shield=True) as shield:
            shield.deadline = anyio.current_time() + ctx.cleanup_timeout
            ctx.log("stopped early: removing what this deploy may have started")
            rc = await run_loon(ctx, "down", "-c", config)
            ctx.log("cleanup done" if rc == 0 and not shield.cancel_called
                    else "cleanup did not finish: check with `loon status`")
        raise
    if ctx.phase == "rolled back":
        raise DeployStepFailed(f"rolled back: {ctx.rolled_back or 'the new version failed'}"
                               "; the previous version serves again (see deploy.log)")
    if rc != 0:
        kind = " (configuration error)" if rc == 2 else ""
        raise DeployStepFailed(f"starting the deployment failed: up exited with code {rc}{kind}"
                               + ("; nothing was stopped: the running version keeps serving"
                                  if ctx.phase in SERVING_PHASES and rc != 2 else "")
                               + "; see deploy.log")
