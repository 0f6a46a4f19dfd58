#!/usr/bin/env python3
"""Loon's build script: validate config.json, build and run Loon, follow its logs.

Docker and Python 3 are all it needs: when the project's dependencies are missing, it makes
a virtual environment in .build-files/.venv, installs the project there, and re-runs itself
in it. Flags are the original script's; they map onto the verbs of the `loon` command
(loon_supervisor.verbs.commands), which both front ends share.
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
    p.add_argument("-c", "--config-file", default="config.json", metavar="PATH",
                   help="configuration file to use (default: config.json)")
    p.add_argument("-D", "--down", action="store_true",
                   help="stop and remove the containers and the background logger; does not "
                   "build, start or validate anything")
    p.add_argument("--name", metavar="NAME",
                   help="with -D: the deployment (container) to stop; default: from the "
                   "config, else loon")
    p.add_argument("--replace", action="store_true",
                   help="remove an existing container of this deployment before starting")
    return p


def plan(ns: argparse.Namespace) -> tuple[str, dict[str, object]]:
    """The loon verb (a module of loon_supervisor.verbs) and its arguments for these flags."""
    config = Path(ns.config_file)
    if ns.down:
        return "down", {"config_file": config, **({"name": ns.name} if ns.name else {})}
    if ns.validate_build:
        return "validate", {"config_file": config, "env_file": ns.env_file}
    return "up", {"config_file": config, "env_file": ns.env_file, "verbose": ns.verbose,
                  "detached": ns.detached, "replace": ns.replace}


def _deps_present() -> bool:
    """Found, not imported: importing aiodocker alone costs a second on a small machine."""
    from importlib.util import find_spec

    names = ("aiodocker", "aiofiles", "anyio", "cryptography", "dotenv", "pydantic",
             "pydantic_settings", "rich", "typer")
    return all(find_spec(name) is not None for name in names)


def _install_stamp() -> str:
    """What the installed venv must match: the dependency list (a git pull may change it)."""
    import hashlib

    return hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()


def _fresh_venv() -> None:
    """A new venv; whatever an interrupted earlier attempt left (no pip, half an install)
    is removed first, so that no state can block later runs."""
    import shutil

    shutil.rmtree(VENV, ignore_errors=True)
    venv.EnvBuilder(with_pip=True).create(VENV)


def _pip_install(python: Path) -> bool:
    """Editable install (``git pull`` takes effect without reinstalling). Build files go to
    a temporary directory, never to an untracked ``build/`` in the checkout."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="loon-bootstrap-") as tmp:
        env = dict(os.environ, TMPDIR=tmp, PIP_DISABLE_PIP_VERSION_CHECK="1")
        result = subprocess.run([str(python), "-m", "pip", "install", "-q", "-e", str(ROOT),
                                 "--config-settings", "editable_mode=compat"], env=env)
    return result.returncode == 0


def _reexec_in_venv() -> None:
    python = VENV / "bin" / "python"
    if os.environ.get("LOON_BUILD_IN_VENV") == "1":
        sys.exit("error: the dependencies are still missing inside .build-files/.venv; "
                 "remove that directory and run again")
    marker = VENV / ".installed"
    want = _install_stamp()
    current = marker.read_text() if marker.is_file() else None
    if current != want:
        if current is None or not python.exists():
            print("dependencies missing: creating .build-files/.venv and installing the "
                  "project there (once)...", file=sys.stderr)
            marker.unlink(missing_ok=True)
            _fresh_venv()
        else:
            print("pyproject.toml changed: updating .build-files/.venv...", file=sys.stderr)
        if not _pip_install(python):
            print("retrying in a fresh .build-files/.venv...", file=sys.stderr)
            _fresh_venv()
            if not _pip_install(python):
                sys.exit("error: installing the project into .build-files/.venv failed (see "
                         "above); check the network access to PyPI and run again")
        marker.write_text(want)
    env = dict(os.environ, LOON_BUILD_IN_VENV="1")
    os.execve(str(python), [str(python), str(Path(__file__).resolve()), *sys.argv[1:]], env)


def main(argv: list[str] | None = None) -> None:
    p = parser()
    ns = p.parse_args(argv)
    if ns.name and not ns.down:
        p.error("--name only applies to -D; for up and -e the name comes from "
                "deploymentSettings.containerName")
    if ns.down and (ns.validate_build or ns.detached or ns.verbose or ns.replace):
        other = "-e" if ns.validate_build else "-d" if ns.detached else "-v" if ns.verbose \
            else "--replace"
        p.error(f"-D/--down cannot be combined with {other}: -D stops the deployment; run "
                f"them as two commands")
    if not _deps_present():
        _reexec_in_venv()
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ.setdefault("LOON_PROJECT_ROOT", str(ROOT))
    from loon_supervisor.verbs.dispatch import call

    verb, kwargs = plan(ns)
    sys.exit(call(verb, **kwargs))


if __name__ == "__main__":
    main()
