"""``loon exec SERVICE CMD...``: run a command in the container, in a service's environment.

The command gets the container's environment (the env file's variables, as every service
does), ``LOON_SERVICE=<service>``, and the service's working directory when the image names
one in the ``org.loon.workdir.<service>`` label. Output is streamed; the exit code is the
command's.
"""

from __future__ import annotations

import sys

from loon_supervisor.engine.client import map_engine_errors, open_engine
from loon_supervisor.verbs.restart import check_services, running_container

WORKDIR_LABEL = "org.loon.workdir."


async def exec_in(name: str, service: str, cmd: list[str]) -> int:
    """Run ``cmd`` and return its exit code (1 when the engine cannot start it)."""
    async with open_engine() as docker:
        container = await running_container(docker, name)
        await check_services(docker, container, [service])
        workdir = (container.get("Labels") or {}).get(WORKDIR_LABEL + service)
        with map_engine_errors(f"running {cmd[0]} in the container"):
            ex = await docker.containers.container(container["Id"]).exec(
                cmd, stdout=True, stderr=True, environment={"LOON_SERVICE": service},
                **({"workdir": workdir} if workdir else {}))
            async with ex.start(detach=False) as stream:
                while (msg := await stream.read_out()) is not None:
                    out = sys.stdout.buffer if msg.stream == 1 else sys.stderr.buffer
                    out.write(msg.data)
                    out.flush()
            info = await ex.inspect()
    code = info.get("ExitCode")
    return int(code) if code is not None else 1
