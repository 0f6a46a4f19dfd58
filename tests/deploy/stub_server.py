"""The real deploy server (``run_deploy_server``, the production code path) with a stand-in
deploy step, as a child process the tests can put under ``prlimit`` or send signals to.

    python -m tests.deploy.stub_server STEP [deploy-server options]

STEP: ``ok`` (logs one line), ``git`` (the real ``git pull`` of --git-branch, nothing else),
``hog`` (takes every free descriptor for 3 s, as a leak elsewhere in the process would).
"""

from __future__ import annotations

import os
import sys

import anyio

from loon_supervisor.deploy.options import parse_options
from loon_supervisor.deploy.runner import DeployContext, update_working_copy
from loon_supervisor.deploy.server import run_deploy_server


async def ok_step(ctx: DeployContext) -> None:
    ctx.log("stand-in step ran")


async def git_step(ctx: DeployContext) -> None:
    await update_working_copy(ctx)


async def hog_step(ctx: DeployContext) -> None:
    held = []
    try:
        while True:
            held.append(os.open(os.devnull, os.O_RDONLY))
    except OSError:
        pass
    try:
        await anyio.sleep(3)
    finally:
        for fd in held:
            os.close(fd)
    ctx.log(f"held {len(held)} descriptors for 3 s")


STEPS = {"ok": ok_step, "git": git_step, "hog": hog_step}

if __name__ == "__main__":
    step = STEPS[sys.argv[1]]
    sys.exit(run_deploy_server(parse_options(sys.argv[2:], "stub-server"), step=step))
