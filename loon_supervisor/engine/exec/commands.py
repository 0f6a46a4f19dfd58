"""Commands run in a container over exec: captured, streamed, fed a stdin; and the
small shell helpers the log followers use (GNU tail's path, stat, a byte range, stopping
marked execs)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiodocker
import anyio

from loon_supervisor.engine.client import map_engine_errors


async def run_capture(docker: aiodocker.Docker, cid: str, cmd: list[str],
                      limit: int = 1 << 20, env: dict[str, str] | None = None
                      ) -> tuple[int, bytes]:
    """Run a short command in the container; (exit code, stdout+stderr). ``env`` reaches
    the command without appearing on its command line (passwords)."""
    with map_engine_errors(f"running {cmd[0]} in the container"):
        ex = await docker.containers.container(cid).exec(
            cmd, stdout=True, stderr=True,
            environment=[f"{k}={v}" for k, v in (env or {}).items()] or None)
        out = bytearray()
        async with ex.start(detach=False) as stream:
            while (msg := await stream.read_out()) is not None:
                if len(out) < limit:
                    out += msg.data
        info = await ex.inspect()
    return int(info.get("ExitCode") or 0), bytes(out)


async def run_streaming(docker: aiodocker.Docker, cid: str, cmd: list[str],
                        env: dict[str, str], workdir: str | None,
                        on_output: Callable[[int, bytes], None]) -> int | None:
    """Run a command, handing each output frame (1 stdout, 2 stderr) on as it comes; its
    exit code (None when the engine did not say)."""
    with map_engine_errors(f"running {cmd[0]} in the container"):
        ex = await docker.containers.container(cid).exec(
            cmd, stdout=True, stderr=True, environment=env, workdir=workdir)
        async with ex.start(detach=False) as stream:
            while (msg := await stream.read_out()) is not None:
                on_output(msg.stream, msg.data)
        info = await ex.inspect()
    code = info.get("ExitCode")
    return int(code) if code is not None else None


async def gnu_tail_path(docker: aiodocker.Docker, cid: str) -> str | None:
    """Where GNU tail is in the image, if anywhere. Followers run it by absolute path: a
    busybox shell would otherwise run its own ``tail`` applet."""
    script = ('for t in /usr/bin/tail /bin/tail /usr/local/bin/tail; do '
              'if "$t" --version 2>/dev/null | grep -q "GNU coreutils"; then echo "$t"; '
              'exit 0; fi; done; exit 1')
    try:
        code, out = await run_capture(docker, cid, ["sh", "-c", script])
    except Exception:
        return None
    path = out.decode(errors="replace").strip()
    return path if code == 0 and path.startswith("/") else None


FOLLOWER_ENV = "LOON_FOLLOWER"  # marks our execs (followers, the status loop) for kill_marked


async def kill_marked(docker: aiodocker.Docker, cid: str, mark: str, exact: bool) -> int:
    """Kill the container's processes whose environment carries ``LOON_FOLLOWER=mark``
    (``exact``) or ``LOON_FOLLOWER=mark...``; how many."""
    flag = "-qxF" if exact else "-qF"
    script = ('n=0; for p in /proc/[0-9]*; do '
              f'if tr "\\0" "\\n" < $p/environ 2>/dev/null | grep {flag} -e "$1"; then '
              'kill ${p#/proc/} 2>/dev/null && n=$((n+1)); fi; done; echo $n')
    _, out = await run_capture(docker, cid, ["sh", "-c", script, "kill-followers",
                                             f"{FOLLOWER_ENV}={mark}"])
    try:
        return int(out.split()[-1])
    except (ValueError, IndexError):
        return 0


async def stat_files(docker: aiodocker.Docker, cid: str, paths: list[str]
                     ) -> dict[str, tuple[int, int]]:
    """(inode, size) of each of ``paths`` that exists in the running container, as one
    snapshot: the sizes are taken between two passes that name the same inodes (a rotation
    renaming the generations meanwhile could show a file under neither name), up to 5
    tries, all in the one exec."""
    script = ('n() { stat -c "%i %n" "$@" 2>/dev/null; }; a=$(n "$@"); k=0; '
              'while :; do s=$(stat -c "%i %s %n" "$@" 2>/dev/null); b=$(n "$@"); '
              'k=$((k+1)); if [ "$a" = "$b" ] || [ $k -ge 5 ]; then break; fi; a=$b; done; '
              'printf "%s\\n" "$s"')
    _, out = await run_capture(docker, cid, ["sh", "-c", script, "stat", *paths])
    found: dict[str, tuple[int, int]] = {}
    for line in out.decode(errors="replace").splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[0].isdigit() and parts[1].isdigit():
            found[parts[2]] = (int(parts[0]), int(parts[1]))
    return found


async def read_bytes_at(docker: aiodocker.Docker, cid: str, path: str, offset: int,
                        count: int) -> bytes:
    """``count`` bytes of ``path`` from ``offset`` (a seam fingerprint; small)."""
    script = f'tail -c +{offset + 1} "$1" 2>/dev/null | head -c {count}'
    _, out = await run_capture(docker, cid, ["sh", "-c", script, "read", path])
    return out


async def run_feeding(docker: aiodocker.Docker, cid: str, cmd: list[str],
                      chunks: AsyncIterator[bytes], env: dict[str, str] | None = None,
                      limit: int = 1 << 16) -> tuple[int, bytes]:
    """Run ``cmd`` with ``chunks`` as its stdin (then end of file); (exit code, the last
    ``limit`` bytes of stdout+stderr). A database restore streams its dump this way, so a
    dump of any size never sits in memory whole, and ``env`` carries the password."""
    with map_engine_errors(f"running {cmd[0]} in the container"):
        ex = await docker.containers.container(cid).exec(
            cmd, stdin=True, stdout=True, stderr=True,
            environment=[f"{k}={v}" for k, v in (env or {}).items()] or None)
        out = bytearray()
        async with ex.start(detach=False) as stream, anyio.create_task_group() as tg:
            async def read() -> None:
                while (msg := await stream.read_out()) is not None:
                    out.extend(msg.data)
                    del out[:-limit]

            tg.start_soon(read)
            async for chunk in chunks:
                await stream.write_in(chunk)
            _half_close(stream)
        info = await ex.inspect()
    return int(info.get("ExitCode") or 0), bytes(out)


def _half_close(stream: Any) -> None:
    """End the command's stdin and keep reading its output: aiodocker's Stream.close()
    closes both directions, so the write side of the hijacked connection is ended here."""
    transport = stream._resp.connection.transport
    if transport is not None and transport.can_write_eof():
        transport.write_eof()


@asynccontextmanager
async def open_marked_exec(docker: aiodocker.Docker, cid: str, cmd: list[str], mark: str,
                           doing: str, kill: bool = True) -> AsyncIterator[Any]:
    """An attached exec of ``cmd`` carrying ``LOON_FOLLOWER=mark`` in its environment (a
    follower, the status loop). On exit the stream is closed and, with ``kill``, the command
    stopped (closing the stream does not stop it), whether or not the engine answers: at
    most 5 s, shielded from cancellation."""
    with map_engine_errors(doing):
        ex = await docker.containers.container(cid).exec(
            cmd, stdout=True, stderr=True, environment={FOLLOWER_ENV: mark})
        stream = ex.start(detach=False)
        await stream.__aenter__()
    try:
        yield stream
    finally:
        with anyio.CancelScope(shield=True), anyio.move_on_after(5):
            await stream.close()
            if kill:
                with contextlib.suppress(Exception):
                    await kill_marked(docker, cid, mark, exact=True)
