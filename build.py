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
    p.add_argument("-c", "--config-file", default=None, metavar="PATH",
                   help="configuration file to use (default: config.json beside build.py; a "
                   "PATH given is taken from the current directory)")
    p.add_argument("-D", "--down", action="store_true",
                   help="stop and remove the containers and the background logger; does not "
                   "build, start or validate anything")
    p.add_argument("--name", metavar="NAME",
                   help="with -D: the deployment (container) to stop; default: from the "
                   "config, else loon")
    p.add_argument("--replace", action="store_true",
                   help="replace a running deployment: build the new version first while "
                   "the old one serves, then swap (a failed build stops nothing)")
    return p


def project_dir(environ: dict[str, str]) -> tuple[Path, str | None]:
    """The project build.py acts on: its own directory, unless LOON_PROJECT_ROOT names
    another (the tests' isolated projects, a wrapper script); then also the one-line note
    that says so, so an inherited variable never moves it silently."""
    inherited = environ.get("LOON_PROJECT_ROOT")
    if not inherited or Path(inherited).resolve() == ROOT:
        return ROOT, None
    return Path(inherited), (f"note: LOON_PROJECT_ROOT={inherited} (from the environment) "
                             f"is the project, not {ROOT}: its config.json, .build-files/ and "
                             "logs/ are used; unset it to use this directory")


def plan(ns: argparse.Namespace, project: Path = ROOT) -> tuple[str, dict[str, object]]:
    """The loon verb (a module of loon_supervisor.verbs) and its arguments for these flags."""
    config = Path(ns.config_file) if ns.config_file else project / "config.json"
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
    import venv  # only here: importing it costs every `build.py -e` about 10 ms

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
    if ns.validate_build and (ns.detached or ns.verbose or ns.replace):
        other = "-d" if ns.detached else "-v" if ns.verbose else "--replace"
        p.error(f"-e/--validate-build cannot be combined with {other}: -e only validates and "
                "writes the env file; drop -e to deploy")
    if ns.down and (ns.validate_build or ns.detached or ns.verbose or ns.replace):
        other = "-e" if ns.validate_build else "-d" if ns.detached else "-v" if ns.verbose \
            else "--replace"
        p.error(f"-D/--down cannot be combined with {other}: -D stops the deployment; run "
                f"them as two commands")
    project, note = project_dir(dict(os.environ))
    if note and os.environ.get("LOON_BUILD_IN_VENV") != "1":  # said once, not again in the venv
        print(note, file=sys.stderr)
    if not _deps_present():
        _reexec_in_venv()
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ["LOON_PROJECT_ROOT"] = str(project)
    from loon_supervisor.verbs.dispatch import call

    verb, kwargs = plan(ns, project)
    sys.exit(call(verb, **kwargs))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # Ctrl+C during the venv install or before a verb took over
        print("interrupted", file=sys.stderr)
        sys.exit(130)
