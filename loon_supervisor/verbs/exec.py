"""``loon exec SERVICE CMD...``: run a command in the container, in a service's environment.

The command gets the container's environment (the env file's variables, as every service
does), ``LOON_SERVICE=<service>``, and the service's working directory when the image names
one in the ``org.loon.workdir.<service>`` label. Output is streamed; the exit code is the
command's.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from loon_supervisor.engine.client import open_engine
from loon_supervisor.lifecycle.running import check_services, running_container

WORKDIR_LABEL = "org.loon.workdir."


async def exec_in(name: str, service: str, cmd: list[str]) -> int:
    """Run ``cmd`` and return its exit code (1 when the engine cannot start it)."""
    def write(stream: int, data: bytes) -> None:
        out = sys.stdout.buffer if stream == 1 else sys.stderr.buffer
        out.write(data)
        out.flush()

    async with open_engine() as engine:
        container = await running_container(engine, name)
        await check_services(engine, container, [service])
        workdir = container.labels.get(WORKDIR_LABEL + service)
        code = await engine.run_streaming(container.id, cmd, {"LOON_SERVICE": service},
                                          workdir, write)
    return code if code is not None else 1


@dataclass(frozen=True)
class ExecOptions:
    """``loon exec``: the deployment, the service whose environment is used, the command."""

    name: str
    service: str
    command: list[str]


async def run(opts: ExecOptions) -> int:
    return await exec_in(opts.name, opts.service, opts.command)
