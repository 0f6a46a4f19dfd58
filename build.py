#!/usr/bin/env python3
"""Loon's build script: validate config.json, build and run Loon, follow its logs.

Docker and Python 3 are all it needs: when the project's dependencies are missing, it makes
a virtual environment in .build-files/.venv, installs the project there, and re-runs itself
in it. Flags are the original script's; they map onto the verbs of the `loon` command
(loon_supervisor.verbs: one module, one options class and one ``run`` per verb, run through
loon_supervisor.verbs.dispatch), which both front ends share.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".build-files" / ".venv"

EPILOG = """examples:
  python3 build.py                         build and run with config.json, write .build-files/.env
  python3 build.py --env-file .env.production --config-file config-production.json
  python3 build.py -vd                     verbose, and exit once everything runs
  python3 build.py -e                      only validate and write the env file (no Docker)
  python3 build.py -D                      stop and remove the containers and the logger
  MYSQLSETTINGS_DATABASEPASSWORD=... python3 build.py -o -s   upstream's overrides, no bar

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
    # Upstream's newer flags (visdesignlab/loonar's build.py), same meaning or the nearest
    # equivalent here.
    p.add_argument("-o", "--overwrite", action="store_true",
                   help="take upstream's override variables from the environment: "
                   "SECTION_FIELD in capitals (e.g. MYSQLSETTINGS_DATABASEPASSWORD) sets that "
                   "config value, as LOON_SECTION__FIELD would; no config copy is written")
    p.add_argument("-s", "--disable-spinner", action="store_true",
                   help="no progress bar: the build's steps are printed as plain lines")
    p.add_argument("--prepare-dev", action="store_true",
                   help="also write apps/client/.env in the Loon checkout "
                   "(loonSourceLocation) with the client's VITE_* variables, for `yarn run "
                   "dev`")
    p.add_argument("-i", "--use-did", action="store_true",
                   help="build.py runs inside a container with the host's Docker socket "
                   "mounted: config paths are the host's (bound as they are, made by the "
                   "engine, TLS files sent from here); service logs are read through the "
                   "engine unless the project is mounted at the same path")
    p.add_argument("--experiment-visibility-control", action="store_true",
                   help="build the client with VITE_EXPERIMENT_VISIBILITY_CONTROL=true "
                   "(only experiments marked visible-by-default are listed); the same as "
                   "generalSettings.experimentVisibilityControl: true")
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
    dev = {"prepare_dev": True} if ns.prepare_dev else {}
    if ns.validate_build:
        return "validate", {"config_file": config, "env_file": ns.env_file, **dev}
    return "up", {"config_file": config, "env_file": ns.env_file, "verbose": ns.verbose,
                  "detached": ns.detached, "replace": ns.replace,
                  **({"progress": False} if ns.disable_spinner else {}), **dev}


def options(verb: str, kwargs: dict[str, Any]) -> Any:
    """The verb's typed options for :func:`plan`'s arguments (down's name resolved here, as
    the ``loon`` front end does: lifecycle/identity.py)."""
    if verb == "validate":
        from loon_supervisor.verbs.validate import ValidateOptions

        return ValidateOptions(**kwargs)
    if verb == "down":
        from loon_supervisor.lifecycle.identity import resolve
        from loon_supervisor.verbs.down import DownOptions

        return DownOptions(resolve(kwargs["config_file"], kwargs.get("name")).name)
    from loon_supervisor.verbs.up import UpOptions

    return UpOptions(**kwargs)


def run_verb(verb: str, opts: Any) -> int:
    """Run the planned verb's ``run`` with its options (verbs/dispatch.py)."""
    from loon_supervisor.verbs import dispatch

    if verb == "validate":
        from loon_supervisor.verbs import validate

        return dispatch.run_plain(validate.run, opts)
    if verb == "down":
        from loon_supervisor.verbs import down

        return dispatch.run_verb(down.run, opts)
    from loon_supervisor.verbs import up

    return dispatch.run_verb(up.run, opts)


def flag_environment(ns: argparse.Namespace, environ: dict[str, str]) -> dict[str, str]:
    """The variables -o, -i and --experiment-visibility-control set for the verb (and the
    background logger it may start): they speak through the environment the verbs read.

    :raises ConfigError: from -o (an upstream name and a LOON_ name disagree).
    """
    out: dict[str, str] = {}
    if ns.overwrite:
        from loon_supervisor.config.upstream_env import upstream_overrides

        mapped, said = upstream_overrides(environ)
        out.update(mapped)
        for line in said:
            print(line)
    if ns.use_did:
        out["LOON_USE_DID"] = "1"
    if ns.experiment_visibility_control:
        out["LOON_GENERALSETTINGS__EXPERIMENTVISIBILITYCONTROL"] = "true"
    return out


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
    if ns.validate_build and (ns.detached or ns.verbose or ns.replace or ns.disable_spinner):
        other = "-d" if ns.detached else "-v" if ns.verbose else "--replace" if ns.replace \
            else "-s"
        p.error(f"-e/--validate-build cannot be combined with {other}: -e only validates and "
                "writes the env file; drop -e to deploy")
    if ns.down:
        clash = [flag for flag, on in [
            ("-e", ns.validate_build), ("-d", ns.detached), ("-v", ns.verbose),
            ("--replace", ns.replace), ("-o", ns.overwrite), ("-s", ns.disable_spinner),
            ("--prepare-dev", ns.prepare_dev),
            ("--experiment-visibility-control", ns.experiment_visibility_control)] if on]
        if clash:
            p.error(f"-D/--down cannot be combined with {clash[0]}: -D stops the deployment; "
                    "run them as two commands")
    project, note = project_dir(dict(os.environ))
    if note and os.environ.get("LOON_BUILD_IN_VENV") != "1":  # said once, not again in the venv
        print(note, file=sys.stderr)
    if not _deps_present():
        _reexec_in_venv()
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ["LOON_PROJECT_ROOT"] = str(project)
    from loon_supervisor.errors import LoonError
    from loon_supervisor.errors import report as fail
    try:
        os.environ.update(flag_environment(ns, dict(os.environ)))
    except LoonError as exc:
        sys.exit(fail(exc))

    verb, kwargs = plan(ns, project)
    try:
        opts = options(verb, kwargs)
    except LoonError as exc:
        sys.exit(fail(exc))
    sys.exit(run_verb(verb, opts))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # Ctrl+C during the venv install or before a verb took over
        print("interrupted", file=sys.stderr)
        sys.exit(130)
