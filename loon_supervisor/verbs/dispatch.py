"""The one dispatch layer under both front ends (``loon`` and ``build.py``).

Every verb is the ``main`` function of its module in this package, returning an exit code;
:func:`call` imports the module only when its verb runs (``build.py -e`` must not pay for
the engine's imports), and :func:`run_sync` runs asynchronous verbs on asyncio (aiodocker
is asyncio-only) with errors turned into one sentence and the exit code."""

from __future__ import annotations

import importlib
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVarTuple, Unpack

import anyio

from loon_supervisor.errors import LoonError, operator_error, signal_exit_code

Ts = TypeVarTuple("Ts")


def run_sync(verb: Callable[[Unpack[Ts]], Awaitable[int]], *args: *Ts) -> int:
    """Run an asynchronous verb to its exit code."""
    try:
        return anyio.run(verb, *args, backend="asyncio")
    except KeyboardInterrupt:
        return signal_exit_code(signal.SIGINT)
    except (LoonError, OSError, BaseExceptionGroup) as exc:
        err = operator_error(exc)
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code


def call(verb: str, **kwargs: Any) -> int:
    """Run verb ``verb`` (a module of this package) with its keyword arguments."""
    module = importlib.import_module(f"loon_supervisor.verbs.{verb.replace('-', '_')}")
    try:
        code: int = module.main(**kwargs)
    except OSError as exc:  # a synchronous verb's file the system refused
        err = operator_error(exc)
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    return code
