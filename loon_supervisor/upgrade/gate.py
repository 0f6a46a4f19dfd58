"""The health gate: a new container counts only once Loon serves.

The gate re-runs the ``loon doctor`` checks that matter for serving — MariaDB login, Redis
PING, nginx answering ``/``, the server answering Loon's experiment-name route without a
5xx, a task's round trip through Celery — every :data:`POLL` seconds until one round passes
them all while no service restarted since the round before (a crash-looping service never gets two rounds with the
same pid). A service in FATAL or EXITED, or one the crash-loop detector flags, fails the
gate at once; otherwise it fails when ``deploymentSettings.healthTimeout`` runs out, naming
the check that failed last. Checks the image has no service for are warnings, as in doctor.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from loon_supervisor.config.model import LoonConfig
from loon_supervisor.doctor.checks import (
    Check,
    Context,
    celery_ping,
    django_api,
    mariadb_login,
    nginx_root,
    redis_ping,
)
from loon_supervisor.doctor.runner import run_checks
from loon_supervisor.doctor.verdict import FAIL, Verdict
from loon_supervisor.engine.base import Engine
from loon_supervisor.engine.images import parse_status
from loon_supervisor.engine.records import ContainerInfo
from loon_supervisor.errors import LoonError
from loon_supervisor.lifecycle.crashloop import CrashLoopDetector, CrashLoopPolicy, parse_run
from loon_supervisor.lifecycle.deployment import FAILED_STATES

POLL = 2.0
CHECK_TIMEOUT = 20.0

# How much a state says about a service being the cause, worst first: when the container
# vanishes during the gate (the background logger stops it once a service is FATAL), the
# service seen in the worst state is the culprit whose log explains the failure.
_TROUBLE = ("FATAL", "EXITED", "BACKOFF", "STARTING")

GATE_CHECKS: list[tuple[str, str, Check]] = [
    ("mysql", "login sees database", mariadb_login),
    ("redis", "PING", redis_ping),
    ("nginx", "answers /", nginx_root),
    ("server", "name check route", django_api),
    ("celery", "task round trip", celery_ping),
]


@dataclass
class GateResult:
    passed: bool
    decided_by: Verdict  # the check that passed last, or the one that failed
    seconds: float
    verdicts: list[Verdict] = field(default_factory=list)

    @property
    def culprit(self) -> str:
        """The service whose log explains a failure."""
        return self.decided_by.service

    def sentence(self) -> str:
        v = self.decided_by
        if self.passed:
            return (f"health gate passed in {self.seconds:.1f} s; decided by {v.service} "
                    f"{v.check} ({v.detail})")
        return (f"health gate failed after {self.seconds:.1f} s: {v.service} {v.check}: "
                f"{v.detail}")


async def _round(ctx: Context) -> list[Verdict]:
    return await run_checks(ctx, GATE_CHECKS, CHECK_TIMEOUT)


async def _services(ctx: Context, command: str | None) -> dict[str, str]:
    """Each service's status line (empty without a status command)."""
    if not command:
        return {}
    _, out = await ctx.engine.run_capture(ctx.cid, ["sh", "-c", command])
    return {name: line for name, _, line in parse_status(out, ctx.services)}


async def health_gate(ctx: Context, status_command: str | None, timeout: float,
                      say: Callable[[str], None], poll: float = POLL) -> GateResult:
    """Poll until Loon serves or ``timeout`` seconds pass; see the module's docstring."""
    d = ctx.config.deploymentSettings
    loops = CrashLoopDetector(CrashLoopPolicy(d.crashLoopRestarts, d.crashLoopWindow))
    started = time.monotonic()
    passing_since: dict[tuple[str, str], float] = {}
    previous: dict[str, int | None] = {}
    last: list[Verdict] = []
    worst: dict[str, tuple[int, str]] = {}  # service -> (rank in _TROUBLE, its line)
    while True:
        try:
            lines = await _services(ctx, status_command)
        except LoonError as exc:
            if await _still_running(ctx):
                raise
            return GateResult(False, _vanished(worst, loops, exc), time.monotonic() - started,
                              last)
        now = time.monotonic()
        for name, line in lines.items():
            loops.observe(name, line, now)
            state = line.split()[1]
            if state in _TROUBLE:
                rank = _TROUBLE.index(state)
                if name not in worst or rank <= worst[name][0]:
                    worst[name] = (rank, " ".join(line.split()))
            if state in FAILED_STATES:
                return GateResult(False, Verdict(name, "process state", FAIL, line.strip()),
                                  now - started, last)
        if looping := loops.looping():
            name = looping[0]
            return GateResult(False, Verdict(name, "crash loop", FAIL,
                                             f"restarted {loops.restarts(name)} times"),
                              now - started, last)
        pids = {name: parse_run(line).pid for name, line in lines.items()}
        last = await _round(ctx)
        now = time.monotonic()
        for v in last:
            key = (v.service, v.check)
            if v.result == FAIL:
                passing_since.pop(key, None)
            else:
                passing_since.setdefault(key, now)
        failed = [v for v in last if v.result == FAIL]
        stable = bool(previous) and pids == previous or not lines
        if not failed and stable:
            decided = max(last, key=lambda v: passing_since[(v.service, v.check)])
            return GateResult(True, decided, now - started, last)
        previous = pids
        if now - started >= timeout:
            return GateResult(False, _timed_out(lines, worst, failed, loops), now - started,
                              last)
        if failed:
            say(f"health gate: waiting for {', '.join(f'{v.service} {v.check}' for v in failed)}"
                f" ({now - started:.0f} s of {timeout:.0f} s)")
        await anyio.sleep(poll)


def _timed_out(lines: dict[str, str], worst: dict[str, tuple[int, str]],
               failed: list[Verdict], loops: CrashLoopDetector) -> Verdict:
    """The verdict when the timeout runs out: a service not running now (BACKOFF, STARTING:
    restarting too slowly for the crash-loop detector), else one seen FATAL, EXITED or in
    BACKOFF during the gate (the last status may come from a container already stopping,
    after the logger stopped it for a FATAL service), explains failing checks better than
    they do themselves (nginx refuses while the server it starts after restarts), so its log
    is the one shown; else the first check that failed."""
    troubled = {n: (_TROUBLE.index(line.split()[1]), " ".join(line.split()))
                for n, line in lines.items() if line.split()[1] in _TROUBLE}
    seen = ""
    if not troubled:
        troubled = {n: w for n, w in worst.items() if w[0] <= _TROUBLE.index("BACKOFF")}
        seen = "seen during the gate: "
    checks = "; ".join(f"{v.service} {v.check}: {v.detail}" for v in failed)
    if troubled:
        name = min(troubled, key=lambda n: (troubled[n][0], -loops.restarts(n), n))
        return Verdict(name, "process state", FAIL, seen + troubled[name][1]
                       + (f" (failing: {checks})" if checks else ""))
    if failed:
        return failed[0]
    return Verdict("container", "services stable", FAIL, "a service restarted in every round")


async def _still_running(ctx: Context) -> bool:
    """Whether the judged container still runs (an engine hiccup, not a stopped container)."""
    try:
        info = await ctx.engine.inspect(ctx.cid)
    except LoonError:
        return False
    return bool(info and info.running)


def _vanished(worst: dict[str, tuple[int, str]], loops: CrashLoopDetector,
              exc: LoonError) -> Verdict:
    """The verdict when the container stopped during the gate: the service seen in the worst
    state (then the one restarted most) is named, so its log explains the failure."""
    if not worst:
        return Verdict("container", "running", FAIL, f"the container stopped during the gate "
                       f"({exc})")
    name = min(worst, key=lambda n: (worst[n][0], -loops.restarts(n), n))
    return Verdict(name, "process state", FAIL, f"the container stopped during the gate; "
                   f"{name} was last seen {worst[name][1]}")


def gate_context(engine: Engine, cid: str, info: ContainerInfo, services: tuple[str, ...],
                 config: LoonConfig, env_path: Path) -> Context:
    """The doctor's context for the container the gate judges."""
    return Context(engine, cid, info, services, config, env_path, info.env)
