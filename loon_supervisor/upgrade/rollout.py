"""A redeploy that proves health before it counts and rolls back on its own
(``loon up -d --replace``, the deploy server), and ``loon rollback`` by hand.

::

    building (old version serves) ─▶ backing up ─▶ swapping ─▶ checking health ─▶ deployed
                                                                  │ a check fails
                                                                  ▼
        stop the new version (its logs collected), restore the database from the pre-swap
        backup when the migrations differ, start the previous version, check its health
                                                                  ▼
                                                             rolled back

Each phase is said as a line ``phase: <name>`` (the deploy server shows it in
``GET /deploy/<id>``). The gate applies to Loon images (those with a ``mysql`` service);
other images (the supervisor's own test images) are deployed without it.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import anyio

from loon_supervisor import versions
from loon_supervisor.backup import database
from loon_supervisor.backup.manifest import (
    BackupError,
    backups_root,
    list_backups,
    read_manifest,
)
from loon_supervisor.backup.restore import restore_into, wait_for_database
from loon_supervisor.backup.take import take_backup
from loon_supervisor.config import load_config
from loon_supervisor.config.model import LoonConfig
from loon_supervisor.doctor.verdict import FAIL, Verdict
from loon_supervisor.engine.base import Engine
from loon_supervisor.engine.client import open_engine
from loon_supervisor.engine.endpoint import resolve_endpoint
from loon_supervisor.engine.records import ContainerInfo
from loon_supervisor.errors import LoonError, signal_exit_code
from loon_supervisor.lifecycle.deployment import Deployment
from loon_supervisor.lifecycle.identity import resolve
from loon_supervisor.lifecycle.running import find_running
from loon_supervisor.paths import build_files_dir, project_root
from loon_supervisor.sinks.reporter import Reporter
from loon_supervisor.sinks.session import EventLog
from loon_supervisor.streams.follow import last_lines
from loon_supervisor.upgrade.gate import GateResult, gate_context, health_gate
from loon_supervisor.verbs.up import UpRun, up

Say = Callable[[str], None]


def phase(say: Say, name: str) -> None:
    say(f"phase: {name}")


@dataclass
class Taken:
    """What the pre-swap step left for a rollback (the backup, the version replaced, the
    new one and its session), and what the gate decided."""

    backup: Path | None = None
    old_image: str | None = None
    swap_started: float | None = None  # monotonic time the old version was asked to stop
    new_image: str | None = None
    session: Path | None = None  # the new run's session (its out.log, the culprit's log)
    result: GateResult | None = None  # the gate's decision (None: it did not decide)
    run: Deployment | None = None  # a foreground run's new version (why it failed)
    migrations: list[str] | None = None  # read before a foreground run stopped the new one


def backup_hook(config: LoonConfig, config_file: Path, env_path: Path, taken: Taken
                ) -> Callable[[Engine, Reporter, str], Awaitable[None]]:
    """Called by ``up`` after the build, right before the old version is stopped."""
    d = config.deploymentSettings

    async def hook(engine: Engine, say: Reporter, new_image: str) -> None:
        taken.new_image = new_image
        taken.session = say.events.path.parent if say.events is not None else None
        running = await find_running(engine, d.containerName)
        old = running.image if running is not None else ""
        loon_image = bool(old) and "mysql" in (await engine.read_contract(old)).services
        if running is not None and loon_image and d.backupBeforeDeploy:
            phase(say, "backing up")
            taken.backup = await take_backup(
                engine, running.id, old, config, config_file, env_path,
                backups_root(project_root()), remote=resolve_endpoint().remote, say=say)
            say(f"backup before the swap: {taken.backup}")
        elif loon_image:
            say("no backup before the swap (deploymentSettings.backupBeforeDeploy is false)")
        phase(say, "swapping")
        taken.old_image = old if loon_image else None  # set last: now the swap begins
        taken.swap_started = time.monotonic()

    return hook


def session_reporter(name: str, session: Path | None = None
                     ) -> tuple[Reporter, EventLog | None]:
    """Lines to the terminal and ``session``'s out.log (by default the deployment's current
    session's)."""
    from rich.console import Console

    session = session or resolve(None, name).session()
    events = EventLog(session / "out.log") if session is not None and session.is_dir() else None
    return Reporter(events, Console(soft_wrap=True, highlight=False)), events


async def check_health(config: LoonConfig, env_path: Path, say: Say) -> GateResult | None:
    """The gate on the running container; None when its image is not a Loon image."""
    from loon_supervisor.lifecycle.running import running_container

    name = config.deploymentSettings.containerName
    async with open_engine() as engine:
        try:
            container = await running_container(engine, name)
        except LoonError as exc:
            return GateResult(False, Verdict("container", "running", FAIL, str(exc)), 0.0)
        contract = await engine.read_contract(container.image)
        if "mysql" not in contract.services:
            say("health gate: skipped (the image has no mysql service: not a Loon image)")
            return None
        phase(say, "checking health")
        info = await engine.inspect(container.id) or ContainerInfo()
        ctx = gate_context(engine, container.id, info, contract.services, config, env_path)
        result = await health_gate(ctx, contract.status_command,
                                   config.deploymentSettings.healthTimeout, say)
    say(result.sentence())
    return result


async def _migrations(config: LoonConfig) -> list[str] | None:
    """The running database's applied migrations; None when they cannot be read."""
    name = config.deploymentSettings.containerName
    try:
        async with open_engine() as engine:
            running = await find_running(engine, name)
            if running is None:
                return None
            return await database.applied_migrations(engine, running.id,
                                                     config.mySqlSettings)
    except LoonError:
        return None


async def _ours_exist(name: str) -> bool:
    """Whether a container or follower of the deployment is left to stop (a foreground run
    removed its failed container itself)."""
    from loon_supervisor.lifecycle.state import lock_holder

    if lock_holder(name) is not None:
        return True
    try:
        async with open_engine() as engine:
            return bool(await engine.list_ours(name))
    except LoonError:
        return True  # let `down` say what is wrong


_ERROR = re.compile(r"^\s*[A-Za-z_][\w.]*(Error|Exception)\b|\bFATAL\b")


def error_lines(lines: list[str], keep: int = 3) -> list[str]:
    """The last ``keep`` distinct error lines (``RuntimeError: ...``): a service that
    restarts in a loop buries its cause under each new start's lines."""
    found: list[str] = []
    for line in reversed(lines):
        text = line.strip()
        if _ERROR.search(text) and text not in found:
            found.append(text)
            if len(found) == keep:
                break
    return found[::-1]


def backup_of(image: str) -> Path | None:
    """The newest finished backup taken while ``image`` ran."""
    for directory in reversed(list_backups(backups_root(project_root()))):
        try:
            if read_manifest(directory).image == image:
                return directory
        except BackupError:
            continue
    return None


async def roll_back(config_file: Path, env_file: str, config: LoonConfig, *, failed: str,
                    target: str, reason: str, culprit: str | None, backup: Path | None,
                    say: Say, session: Path | None = None,
                    migrations: list[str] | None = None) -> GateResult | None:
    """Stop ``failed`` (its logs collected), restore the database from ``backup`` when the
    migrations differ from the backup's, start ``target`` again and check its health; the
    failed version is recorded as rolled back with ``reason`` and its culprit's last lines.
    ``migrations``: the failed version's, when read before it stopped (a foreground run)."""
    from loon_supervisor.verbs.down import down

    name = config.deploymentSettings.containerName
    # The caller's session first: a background logger that stopped the failed container has
    # forgotten its state, and with it where the culprit's log is.
    session = session or resolve(None, name).session()
    now = migrations if migrations is not None else await _migrations(config)
    say(f"rolling back from {failed} to {target}: {reason}")
    if await _ours_exist(name) and await down(name) != 0:
        raise LoonError(f"the failed version {failed} did not stop; check with `loon status`")
    recent = last_lines(session / f"{culprit}.log", 200) if session and culprit else []
    tail, errors = recent[-20:], error_lines(recent)
    if tail:
        say(f"last lines of {culprit}.log:")
        for line in tail:
            say(f"  {line}")
    manifest = read_manifest(backup) if backup is not None else None
    changed = manifest is not None and (now is None or now != manifest.migrations)

    async def start(only: tuple[str, ...] | None) -> None:
        code = await up(UpRun(config_file, env_file, detached=True, replace=True,
                                  only=only, image=target))
        if code != 0:
            raise LoonError(f"the previous version {target} did not start (exit code {code})")

    if changed and backup is not None and manifest is not None:
        async with open_engine() as engine:
            from loon_supervisor.lifecycle.running import running_container

            async def database_only() -> str:
                await start(("mysql",))
                cid = (await running_container(engine, name)).id
                applied = now
                if applied is None:  # the failed container was gone: ask the database itself
                    try:
                        await wait_for_database(engine, cid, config)
                        applied = await database.applied_migrations(engine, cid,
                                                                    config.mySqlSettings)
                    except LoonError:
                        applied = None
                added = [m for m in (applied or []) if m not in manifest.migrations]
                if added or now is not None:
                    what = ", ".join(added) or "migrations differ"
                    say(f"{failed} changed the schema ({what}): restoring the database from "
                        f"{backup.name}")
                else:  # e.g. stopped before its database answered
                    say(f"{failed}'s migrations could not be read while it ran: restoring the "
                        f"database from {backup.name} to be safe")
                return cid

            async def nothing() -> None:
                return None

            await restore_into(engine, backup, manifest, config, stop=nothing,
                               start_database_only=database_only,
                               start_all=lambda: start(None), say=say, data=False)
    else:
        say("the database keeps its schema (same migrations as before the swap)"
            if manifest is not None else "no pre-swap backup: the database is left as it is")
        await start(None)
    why = reason + (f"; errors in {culprit}.log: " + " | ".join(errors) if errors else "") + (
        f"; last lines of {culprit}.log: " + " | ".join(tail[-5:]) if tail else "")
    versions.record_outcome(name, failed, versions.ROLLED_BACK, why)
    env_path = build_files_dir() / env_file
    result = await check_health(config, env_path, say)
    phase(say, "rolled back")
    if result is not None and not result.passed:
        say(f"the previous version {target} is not healthy either: {result.sentence()}")
    else:
        say(f"rolled back to {target}")
    return result


def _passed(name: str, taken: Taken, result: GateResult | None, say: Say) -> None:
    """The new version counts: with a gate, its downtime ends now."""
    new = versions.current(name)
    if result is not None and new is not None and taken.swap_started is not None:
        downtime = round(time.monotonic() - taken.swap_started, 3)
        say(f"downtime: {downtime:.2f} s (the old container's stop to the new one passing "
            "its health gate)")
        versions.mark_deployed(name, new.tag, downtime)
    phase(say, "deployed")


def gate_beside(config: LoonConfig, env_path: Path, taken: Taken
                ) -> Callable[[Deployment], Coroutine[Any, Any, None]]:
    """A foreground redeploy's gate, run beside the follow once the new container is
    followed: a failure ends the run (its container is stopped, its logs collected and it
    is removed as in any foreground run), then :func:`gated_up` rolls back."""
    name = config.deploymentSettings.containerName

    async def hook(dep: Deployment) -> None:
        taken.run = dep
        if taken.old_image is None:
            return  # nothing was replaced, or not a Loon image: no gate (as with -d)
        try:
            result = await check_health(config, env_path, dep.say)
        except LoonError as exc:
            result = GateResult(False, Verdict("container", "health gate", FAIL, str(exc)), 0.0)
            dep.say(result.sentence())
        taken.result = result
        if result is None or result.passed:
            _passed(name, taken, result, dep.say)
            return
        if not dep.stopping_run():
            taken.migrations = await _migrations(config)
            dep.fail("the new version failed its health gate: stopping it to roll back")
            dep.control.stop_requested.set()

    return hook


SIGNALS = (signal.SIGINT, signal.SIGTERM)


async def _gate_unless_signalled(config: LoonConfig, env_path: Path, say: Say
                                 ) -> tuple[GateResult | None, int | None]:
    """The gate on the new version, unless SIGINT/SIGTERM comes first: then the signal.
    Once this returns, a signal has its default effect again (a second one stops a
    rollback where it is)."""
    result: GateResult | None = None
    got: int | None = None
    async with anyio.create_task_group() as tg:
        async def watch() -> None:
            nonlocal got
            with anyio.open_signal_receiver(*SIGNALS) as signals:
                async for signum in signals:
                    got = signum
                    tg.cancel_scope.cancel()
                    return

        tg.start_soon(watch)
        await anyio.sleep(0)  # the receiver is in place before the gate starts
        result = await check_health(config, env_path, say)
        tg.cancel_scope.cancel()
    return (None if got is not None else result), got


def _cancelled(signum: int) -> str:
    return (f"cancelled ({signal.Signals(signum).name}) after the swap, before the new version "
            "passed its health gate")


async def gated_up(opts: UpRun) -> int:
    """``up --replace`` (``-d`` or not) with the pre-swap backup, the health gate and the
    automatic rollback. Detached: exit code 0 when the new version passed, 1 when it was
    rolled back. In the foreground the gate runs beside the follow (:func:`gate_beside`);
    a run whose new version passed ends as any foreground run, one that failed its gate is
    rolled back (the previous version then runs in the background) and exits 1. A SIGINT or
    SIGTERM after the swap, before the gate passed, rolls back too (exit 130 or 143)."""
    config = load_config(opts.config_file)
    name = config.deploymentSettings.containerName
    env_path = build_files_dir() / opts.env_file
    taken = Taken()
    hooked = replace(opts, before_swap=backup_hook(config, opts.config_file, env_path, taken))
    if not opts.detached:
        hooked = replace(hooked, while_following=gate_beside(config, env_path, taken))
    code = await up(hooked)
    passed = taken.result is not None and taken.result.passed
    signalled = code in [signal_exit_code(s) for s in SIGNALS]
    if taken.old_image is None or not (code in (0, 1) or signalled and not passed):
        return code  # nothing was replaced (or not a Loon image), or a usage error
    if not opts.detached and (code == 0 or passed):
        return code  # the foreground run passed its gate (or `loon down` ended it) and ended
    session = taken.session or resolve(None, name).session()
    say, events = session_reporter(name, session)
    try:
        result = taken.result
        if opts.detached and code == 0:
            phase_result, got = await _gate_unless_signalled(config, env_path, say)
            if got is not None:
                say(f"{signal.Signals(got).name} during the health gate: rolling back")
                code = signal_exit_code(got)
            else:
                result = phase_result
                if result is None or result.passed:
                    _passed(name, taken, result, say)
                    return 0
        if code > 128:  # a signal after the swap
            reason, culprit = _cancelled(code - 128), None
        elif result is not None:
            reason, culprit = result.sentence(), result.culprit
        elif taken.run is not None and taken.run.failure is not None:  # before the gate decided
            reason, culprit = taken.run.failure, taken.run.culprit
        else:
            rec = next((v for v in versions.versions(name) if v.tag == taken.new_image), None)
            why = rec.reason if rec is not None and rec.outcome == versions.FAILED else None
            reason, culprit = "the new version did not start" + (f": {why}" if why else ""), \
                "container"
        failed = taken.new_image or "the new version"
        await roll_back(opts.config_file, opts.env_file, config, failed=failed,
                        target=taken.old_image, reason=reason, culprit=culprit,
                        backup=taken.backup, say=say, session=session,
                        migrations=taken.migrations)
        return code if code > 128 else 1
    finally:
        if events is not None:
            events.close()


async def rollback(config_file: Path, env_file: str, version: str | None) -> int:
    """``loon rollback [VERSION]``: the same rollback, by hand."""
    config = load_config(config_file)
    name = config.deploymentSettings.containerName
    known = versions.versions(name)
    if version is None:
        prev = versions.previous(name)
        if prev is None:
            raise LoonError("no earlier version to roll back to (`loon versions` lists them); "
                            "name one: `loon rollback TAG`")
        target = prev.tag
    else:
        match = [v.tag for v in known if v.tag == version or v.tag.endswith(version)]
        if len(match) != 1:
            raise LoonError(f"{version!r} names {'no' if not match else 'more than one'} "
                            "version; give a tag as `loon versions` lists it")
        target = match[0]
    now = versions.current(name)
    failed = now.tag if now is not None else "the running version"
    if target == failed:
        raise LoonError(f"{target} is the current version already; nothing to roll back")
    say, events = session_reporter(name)
    try:
        result = await roll_back(config_file, env_file, config, failed=failed, target=target,
                                 reason="rolled back by hand (loon rollback)", culprit=None,
                                 backup=backup_of(target), say=say)
    finally:
        if events is not None:
            events.close()
    return 1 if result is not None and not result.passed else 0
