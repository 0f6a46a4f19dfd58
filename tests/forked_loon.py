"""`python -m loon_supervisor ...` without paying Python's start-up and imports on every call.

Why by hand: the bad-input tests run the real front end about 150 times, and each run spent
0.2-0.5 s importing typer, pydantic and aiohttp before reading its first argument; that was a
quarter of the engine-free suite. No test library forks a pre-imported interpreter per call
(pytest-xdist forks nothing; `multiprocessing`'s forkserver runs functions, not a `__main__`
with its own file descriptors), so this is a small zygote: one child process imports the CLI
once, then forks for each call. The fork gets its own process, working directory,
environment, stdin (/dev/null), stdout and stderr pipes, memory cap and exit code, exactly as
`subprocess.run` would give; only module-level code that reads the environment at import time
(the COALESCE and ENGINE_GRACE knobs, the tests' `sitecustomize` hooks) would see the zygote's
values, so a call whose environment sets any `LOON_TEST_*`, `LOON_COALESCE_MS`,
`LOON_HOSTDIR_COALESCE_MS` or `LOON_ENGINE_GRACE` runs as a real subprocess instead.
"""

from __future__ import annotations

import atexit
import pickle
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

IMPORT_TIME_VARS = ("LOON_TEST_", "LOON_COALESCE_MS", "LOON_HOSTDIR_COALESCE_MS",
                    "LOON_ENGINE_GRACE")

_ZYGOTE = r'''
import os, pickle, resource, runpy, select, signal, sys, time, traceback

import importlib.util

import loon_supervisor.cli  # the imports every call would pay for
for name in ("loon_supervisor.verbs.status", "loon_supervisor.verbs.down",
             "loon_supervisor.verbs.up", "loon_supervisor.verbs.logs",
             "loon_supervisor.engine.client", "loon_supervisor.spec.prepare"):
    try:
        __import__(name)
    except ImportError:
        pass

requests = os.fdopen(os.dup(0), "rb")
answers = os.fdopen(os.dup(1), "wb")
devnull = os.open(os.devnull, os.O_RDWR)
os.dup2(devnull, 0)
os.dup2(devnull, 1)
main_file = importlib.util.find_spec("loon_supervisor.__main__").origin


def child(req, out_w, err_w):
    os.chdir(req["cwd"])
    os.environ.clear()
    os.environ.update(req["env"])
    os.dup2(devnull, 0)
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    os.closerange(3, 1 << 16)
    if req["cap"]:
        resource.setrlimit(resource.RLIMIT_AS, (req["cap"], req["cap"]))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    code = 0
    try:
        sys.argv = [main_file, *req["args"]]
        runpy.run_module("loon_supervisor", run_name="__main__", alter_sys=True)
    except SystemExit as stop:
        if stop.code is None:
            code = 0
        elif isinstance(stop.code, int):
            code = stop.code
        else:
            print(stop.code, file=sys.stderr)
            code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code & 0xFF)


while True:
    try:
        req = pickle.load(requests)
    except EOFError:
        break
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        child(req, out_w, err_w)
    os.close(out_w)
    os.close(err_w)
    chunks = {out_r: [], err_r: []}
    open_fds = {out_r, err_r}
    deadline = time.monotonic() + req["timeout"]
    timed_out = False
    while open_fds:
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            break
        for fd in select.select(list(open_fds), [], [], left)[0]:
            data = os.read(fd, 1 << 16)
            if data:
                chunks[fd].append(data)
            else:
                open_fds.discard(fd)
    if timed_out:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    out, err = b"".join(chunks[out_r]), b"".join(chunks[err_r])
    os.close(out_r)
    os.close(err_r)
    pickle.dump((timed_out, os.waitstatus_to_exitcode(status), out, err), answers)
    answers.flush()
'''


class ForkedLoon:
    """One zygote per test process; `run` is `subprocess.run([python, -m, loon_supervisor])`."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None

    def _zygote(self) -> subprocess.Popen[bytes]:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen([sys.executable, "-c", _ZYGOTE],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            atexit.register(self.close)
        return self._proc

    def run(self, args: list[str], *, cwd: Path, env: dict[str, str], timeout: float,
            memory_cap: int | None) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "loon_supervisor", *args]
        proc = self._zygote()
        assert proc.stdin is not None and proc.stdout is not None
        request: dict[str, Any] = {"args": args, "cwd": str(cwd), "env": env,
                                   "timeout": timeout, "cap": memory_cap}
        pickle.dump(request, proc.stdin)
        proc.stdin.flush()
        timed_out, code, out, err = pickle.load(proc.stdout)
        if timed_out:
            raise subprocess.TimeoutExpired(command, timeout, out, err)
        return subprocess.CompletedProcess(command, code, _text(out), _text(err))

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            for stream in (proc.stdin, proc.stdout):
                _close(stream)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _close(stream: IO[bytes] | None) -> None:
    if stream is not None:
        stream.close()


def _text(data: bytes) -> str:
    """As `subprocess.run(text=True)` decodes: the locale's encoding, universal newlines."""
    import io
    import locale

    return io.TextIOWrapper(io.BytesIO(data), encoding=locale.getpreferredencoding(False)).read()


def needs_real_process(env: dict[str, str]) -> bool:
    """A variable read at import time must reach a fresh interpreter."""
    return any(key.upper().startswith(IMPORT_TIME_VARS) for key in env)


FORKED = ForkedLoon()
