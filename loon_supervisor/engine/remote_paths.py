"""Volume directories that live on a remote engine's machine: checked and made over there.

With DOCKER_HOST=ssh://... or a remote context, ``/srv/loon/mysql`` in the config is a path on
the server, so validation leaves this machine alone (config/rules.py) and this module runs one
short-lived helper container on that engine instead: network mode none, each directory's
parent bound at /loon-paths/<i>, and a shell snippet that reports each directory as existing,
created, or not a directory. The helper uses the deployment's image, already on that engine
after the build, so nothing has to be pulled (no registry is assumed to be reachable).
Hand-written because the Engine API has no "stat/mkdir on the host" call.
"""

from __future__ import annotations

import posixpath
import shlex
from typing import Any

import aiodocker
import anyio

from loon_supervisor.engine.client import map_engine_errors
from loon_supervisor.engine.containers import TOOL_LABEL
from loon_supervisor.errors import ConfigError, Problem

MOUNT = "/loon-paths"


def helper_script(dirs: list[str], files: list[str]) -> str:
    """The shell run in the helper: one 'i state' line per directory, then per file."""
    lines = []
    for i, d in enumerate(dirs):
        p = shlex.quote(f"{MOUNT}/{i}/{posixpath.basename(d.rstrip('/'))}")
        lines.append(f"if [ -d {p} ]; then echo d{i} exists; elif [ -e {p} ]; then "
                     f"echo d{i} notdir; elif mkdir {p}; then echo d{i} created; "
                     f"else echo d{i} failed; fi")
    for j, f in enumerate(files):
        p = shlex.quote(f"{MOUNT}/f{j}/{posixpath.basename(f)}")
        lines.append(f"if [ -f {p} ]; then echo f{j} ok; else echo f{j} missing; fi")
    return "\n".join(lines)


def interpret(output: str, dirs: list[tuple[str, str]], files: list[tuple[str, str]],
              where: str) -> tuple[list[str], list[Problem]]:
    """Messages and problems from the helper's output lines."""
    said: list[str] = []
    problems: list[Problem] = []
    states = dict(line.split(" ", 1) for line in output.split("\n") if " " in line)
    for i, (json_path, d) in enumerate(dirs):
        state = states.get(f"d{i}", "failed")
        if state == "created":
            said.append(f"created {d} on the engine's machine ({where}) ({json_path})")
        elif state == "notdir":
            problems.append(Problem(json_path, f"{d} on the engine's machine ({where}) exists "
                                    "but is not a directory", "remove it or choose another path"))
        elif state != "exists":
            problems.append(Problem(json_path, f"{d} cannot be created on the engine's machine "
                                    f"({where})", "create it there yourself or choose another "
                                    "directory"))
    for j, (json_path, f) in enumerate(files):
        if states.get(f"f{j}") != "ok":
            problems.append(Problem(json_path, f"{f} is not a file on the engine's machine "
                                    f"({where})", "copy it to the server or correct the path"))
    return said, problems


async def ensure_on_engine(docker: aiodocker.Docker, image: str, where: str,
                           dirs: list[tuple[str, str]],
                           files: list[tuple[str, str]] | None = None) -> list[str]:
    """Make missing volume directories on the engine's machine; ConfigError lists what can't be.

    ``files`` (json path, absolute path) are only checked, never made: for files that must
    already be on the server. Certificates from this machine are copied into the container
    instead (engine/containers.py ``copies``).
    """
    files = files or []
    if not dirs and not files:
        return []
    binds = [f"{posixpath.dirname(d.rstrip('/')) or '/'}:{MOUNT}/{i}"
             for i, (_, d) in enumerate(dirs)]
    binds += [f"{posixpath.dirname(f)}:{MOUNT}/f{j}:ro" for j, (_, f) in enumerate(files)]
    config: dict[str, Any] = {
        "Image": image,
        "Entrypoint": ["sh", "-c"],
        "Cmd": [helper_script([d for _, d in dirs], [f for _, f in files])],
        "User": "0",
        "Labels": {TOOL_LABEL: "helper"},
        "NetworkDisabled": True,
        "HostConfig": {"Binds": binds, "NetworkMode": "none"},
    }
    with map_engine_errors("checking volume paths on the engine's machine"):
        container = await docker.containers.create(config)
        try:
            await container.start()
            await container.wait(timeout=60)
            output = "".join(await container.log(stdout=True, stderr=True))
        finally:
            with anyio.CancelScope(shield=True):  # Ctrl+C here still leaves nothing behind
                await container.delete(force=True, v=True)
    said, problems = interpret(output, dirs, files, where)
    if problems:
        raise ConfigError(problems)
    return said

