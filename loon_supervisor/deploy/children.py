"""Short child processes of a deploy (git) in a process group of their own.

``anyio.run_process`` starts a child in the server's own session and, when cancelled,
kills only that child: ``git pull`` died but the ``git fetch``, ``sh`` and ``ssh`` it had
started stayed behind under PID 1 (issue 26), one set per cancelled deploy. Here the child
leads a new session, and on cancel, timeout or server shutdown the whole group gets
SIGTERM, then SIGKILL, so nothing it started survives it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence

import anyio
from anyio.abc import ByteReceiveStream, Process


async def _read_all(stream: ByteReceiveStream | None, into: list[bytes]) -> None:
    if stream is None:
        return
    async for chunk in stream:
        into.append(chunk)


async def stop_group(proc: Process, grace: float) -> None:
    """SIGTERM to the child's process group, SIGKILL to what is left after ``grace``
    seconds (members may outlive the leader, so the group is killed in any case)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with anyio.move_on_after(grace):
        await proc.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with anyio.move_on_after(10):
        await proc.wait()


async def run_grouped(cmd: Sequence[str], *, env: Mapping[str, str], grace: float = 5.0
                      ) -> tuple[int, bytes, bytes]:
    """Run ``cmd`` to its end in its own process group: (exit code, stdout, stderr).

    Cancelled (DELETE, a timeout, the server stopping), it stops the whole group first.
    """
    out: list[bytes] = []
    err: list[bytes] = []
    proc = await anyio.open_process(list(cmd), stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    start_new_session=True, env=dict(env))
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_read_all, proc.stdout, out)
            tg.start_soon(_read_all, proc.stderr, err)
        code = await proc.wait()
    finally:
        with anyio.CancelScope(shield=True):
            if proc.returncode is None:  # cancelled, timed out or the server stops
                await stop_group(proc, grace)
            await proc.aclose()
    return code, b"".join(out), b"".join(err)
