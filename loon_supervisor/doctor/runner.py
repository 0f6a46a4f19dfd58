"""Runs every check concurrently in one task group, each under its own timeout, and turns
whatever happened (answer, CheckFailed, timeout, engine error) into a Verdict."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import anyio
from rich.console import Console

from loon_supervisor.config import load_config
from loon_supervisor.engine.client import open_engine
from loon_supervisor.engine.records import ContainerInfo
from loon_supervisor.errors import ConfigError, LoonError
from loon_supervisor.lifecycle.running import find_running
from loon_supervisor.paths import build_files_dir

from .checks import CHECKS, Check, Context
from .verdict import FAIL, PASS, CheckFailed, Verdict, exit_code, print_table, to_json

CHECK_TIMEOUT = 30.0


async def run_check(ctx: Context, service: str, name: str, check: Check,
                    timeout: float = CHECK_TIMEOUT) -> Verdict:
    try:
        with anyio.fail_after(timeout):
            result = await check(ctx)
    except TimeoutError:
        return Verdict(service, name, FAIL, f"no answer within {timeout:.0f} s",
                       f"see {service}.log in the session's logs")
    except CheckFailed as exc:
        return Verdict(service, name, FAIL, str(exc), exc.hint)
    except (LoonError, OSError, ValueError, KeyError) as exc:
        return Verdict(service, name, FAIL, f"{type(exc).__name__}: {exc}",
                       f"see {service}.log in the session's logs")
    if isinstance(result, Verdict):
        return result
    return Verdict(service, name, PASS, result)


async def diagnose(config_file: Path, env_file: str = ".env",
                   timeout: float = CHECK_TIMEOUT) -> list[Verdict]:
    """Every check's verdict, in CHECKS order; raises LoonError when nothing runs."""
    config = load_config(config_file)
    name = config.deploymentSettings.containerName
    async with open_engine() as engine:
        found = await find_running(engine, name)
        if found is None:
            return [Verdict("container", "running", FAIL, f"deployment '{name}' is not running",
                            "start it with python3 build.py (or loon up)")]
        cid = found.id
        info = await engine.inspect(cid) or ContainerInfo()
        contract = await engine.read_contract(info.image)
        ctx = Context(engine, cid, info, contract.services, config,
                      build_files_dir() / env_file, info.env)
        verdicts = await run_checks(ctx, CHECKS, timeout)
        if config.deploymentSettings.orchestrator == "swarm":
            from .swarm_reach import CHECK, SERVICE, worker_reach

            try:
                with anyio.fail_after(timeout * 2):
                    verdicts += await worker_reach(engine, config)
            except (TimeoutError, LoonError) as exc:
                verdicts.append(Verdict(SERVICE, CHECK, FAIL, str(exc) or "no answer in time",
                                        "check the swarm's nodes (`docker node ls`)"))
        return verdicts


async def run_checks(ctx: Context, checks: Sequence[tuple[str, str, Check]],
                     timeout: float = CHECK_TIMEOUT) -> list[Verdict]:
    """Every check at once (each bounded by ``timeout``); verdicts in ``checks`` order."""
    results: list[Verdict | None] = [None] * len(checks)

    async def one(i: int, service: str, check_name: str, check: Check) -> None:
        results[i] = await run_check(ctx, service, check_name, check, timeout)

    async with anyio.create_task_group() as tg:
        for i, (service, check_name, check) in enumerate(checks):
            tg.start_soon(one, i, service, check_name, check)
    return [v for v in results if v is not None]


async def run_doctor(config_file: Path, env_file: str = ".env", as_json: bool = False,
                     timeout: float = CHECK_TIMEOUT) -> int:
    """Exit code: 0 when no check failed, 1 when one did, 2 for a bad config."""
    try:
        verdicts = await diagnose(config_file, env_file, timeout)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return exc.exit_code
    if as_json:
        print(to_json(verdicts))
    else:
        console = Console(soft_wrap=True)
        if not console.is_terminal:  # pipes and logs get whole lines, not a wrapped table
            console = Console(soft_wrap=True, width=250)
        print_table(verdicts, console)
    return exit_code(verdicts)
