#!/usr/bin/env python3
"""Loon's build script: validate config.json, build and run Loon, follow its logs.

Docker and Python 3 are all it needs: when the project's dependencies are missing, it makes
a virtual environment in .build-files/.venv, installs the project there, and re-runs itself
in it. Flags are the original script's; they map onto the verbs of the `loon` command
(loon_supervisor.commands), which both front ends share.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".build-files" / ".venv"

EPILOG = """examples:
  python3 build.py                         build and run with config.json, write .build-files/.env
  python3 build.py --env-file .env.production --config-file config-production.json
  python3 build.py -vd                     verbose, and exit once everything runs
  python3 build.py -e                      only validate and write the env file (no Docker)
  python3 build.py -D                      stop and remove the containers and the logger

exit codes: 0 success; 1 runtime failure (engine, build, a service or the container died);
2 invalid configuration or usage; 130 stopped by Ctrl+C; 143 stopped by SIGTERM.
logs: logs/logs_%Y-%m-%d_%H-%M-%S/<service>.log, out.log, container.log; logs/latest.
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="build.py", description="Validate config.json, build and run Loon in Docker, and "
        "write every service's log to logs/.", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-v", "--verbose", action="store_true",
                   help="send all output (build, every service's lines) to the terminal and "
                   "the main log file; otherwise only a summary is shown")
    p.add_argument("-d", "--detached", action="store_true",
                   help="once all containers are started, exit and keep logging in the "
                   "background")
    p.add_argument("-e", "--validate-build", action="store_true",
                   help="do not build or start anything: only validate the configuration and "
                   "write the env file")
    p.add_argument("--env-file", default=".env", metavar="NAME",
                   help="name of the env file to create in .build-files/ (default: .env)")
    p.add_argument("--config-file", default="config.json", metavar="PATH",
                   help="configuration file to use (default: config.json)")
    p.add_argument("-D", "--down", action="store_true",
                   help="stop and remove the containers and the background logger; does not "
                   "build, start or validate anything")
    p.add_argument("--replace", action="store_true",
                   help="remove an existing container of this deployment before starting")
    p.add_argument("--context", metavar="NAME",
                   help="Docker context to use (like docker --context; see docs/remote-engines.md)")
    return p


def plan(ns: argparse.Namespace) -> tuple[str, dict[str, object]]:
    """The loon verb (loon_supervisor.commands) and its arguments for these flags."""
    config = Path(ns.config_file)
    if ns.down:
        return "down", {"config_file": config}
    if ns.validate_build:
        return "validate", {"config_file": config, "env_file": ns.env_file}
    return "up", {"config_file": config, "env_file": ns.env_file, "verbose": ns.verbose,
                  "detached": ns.detached, "replace": ns.replace}


def _deps_present() -> bool:
    """Found, not imported: importing aiodocker alone costs a second on a small machine."""
    from importlib.util import find_spec

    names = ("aiodocker", "aiofiles", "anyio", "dotenv", "pydantic", "pydantic_settings",
             "rich", "typer")
    return all(find_spec(name) is not None for name in names)


def _reexec_in_venv() -> None:
    python = VENV / "bin" / "python"
    if os.environ.get("LOON_BUILD_IN_VENV") == "1":
        sys.exit("error: the dependencies are still missing inside .build-files/.venv; "
                 "remove that directory and run again")
    if not python.exists():
        print("dependencies missing: creating .build-files/.venv and installing the project "
              "there (once)...", file=sys.stderr)
        venv.EnvBuilder(with_pip=True).create(VENV)
    marker = VENV / ".installed"
    if not marker.exists():
        result = subprocess.run([str(python), "-m", "pip", "install", "-q", str(ROOT)])
        if result.returncode != 0:
            sys.exit("error: installing the project into .build-files/.venv failed (see above)")
        marker.touch()
    env = dict(os.environ, LOON_BUILD_IN_VENV="1")
    os.execve(str(python), [str(python), str(Path(__file__).resolve()), *sys.argv[1:]], env)


def main(argv: list[str] | None = None) -> None:
    ns = parser().parse_args(argv)
    if ns.context:  # as `docker --context`: it wins over DOCKER_HOST, also for the -d logger
        os.environ.pop("DOCKER_HOST", None)
        os.environ["DOCKER_CONTEXT"] = ns.context
    if not _deps_present():
        _reexec_in_venv()
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ.setdefault("LOON_PROJECT_ROOT", str(ROOT))
    from loon_supervisor import commands

    verb, kwargs = plan(ns)
    sys.exit(getattr(commands, verb)(**kwargs))


if __name__ == "__main__":
    main()
