"""The one dispatch layer under both front ends (``loon`` and ``build.py``).

Every verb is a module of this package with one frozen options class and ``run(opts) ->
int`` (``async`` when it talks to the engine), as docker compose's ``pkg/compose`` has one
file per verb and one options struct each. The front ends import a verb's module only when
it runs (``build.py -e`` must not pay for the engine's imports), build its options (typed:
mypy checks every argument) and hand both to :func:`run_verb` or :func:`run_plain`, which
turn errors into one sentence and the exit code."""

from __future__ import annotations

import signal
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar, TypeVarTuple, Unpack

import anyio

from loon_supervisor.errors import LoonError, operator_error, signal_exit_code

Ts = TypeVarTuple("Ts")
O = TypeVar("O")  # noqa: E741 (a verb's options class)


def run_sync(verb: Callable[[Unpack[Ts]], Awaitable[int]], *args: *Ts) -> int:
    """Run an asynchronous verb to its exit code on asyncio (aiodocker is asyncio-only)."""
    try:
        return anyio.run(verb, *args, backend="asyncio")
    except KeyboardInterrupt:
        return signal_exit_code(signal.SIGINT)
    except (LoonError, OSError, BaseExceptionGroup) as exc:
        err = operator_error(exc)
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code


def run_verb(verb: Callable[[O], Awaitable[int]], opts: O) -> int:
    """An asynchronous verb's ``run`` with its options, to its exit code."""
    return run_sync(verb, opts)


def run_plain(verb: Callable[[O], int], opts: O) -> int:
    """A synchronous verb's ``run`` (no engine); a file the system refused is one sentence."""
    try:
        return verb(opts)
    except OSError as exc:
        err = operator_error(exc)
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
