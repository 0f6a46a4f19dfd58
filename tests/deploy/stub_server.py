"""The real deploy server (``run_deploy_server``, the production code path) with a stand-in
deploy step, as a child process the tests can put under ``prlimit`` or send signals to.

    python -m tests.deploy.stub_server STEP [deploy-server options]

STEP: ``ok`` (logs one line), ``git`` (the real ``git pull`` of --git-branch, nothing else).
"""

from __future__ import annotations

import sys

from loon_supervisor.deploy.options import parse_options
from loon_supervisor.deploy.runner import DeployContext, update_working_copy
from loon_supervisor.deploy.server import run_deploy_server


async def ok_step(ctx: DeployContext) -> None:
    ctx.log("stand-in step ran")


async def git_step(ctx: DeployContext) -> None:
    await update_working_copy(ctx)


STEPS = {"ok": ok_step, "git": git_step}

if __name__ == "__main__":
    step = STEPS[sys.argv[1]]
    sys.exit(run_deploy_server(parse_options(sys.argv[2:], "stub-server"), step=step))
