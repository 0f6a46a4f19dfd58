"""The project directory, resolved one way, and every path derived from it.

``build.py`` uses its own directory (it sets ``LOON_PROJECT_ROOT`` unless the caller did).
``loon`` uses ``--project-dir``, else ``LOON_PROJECT_ROOT``, else the nearest directory
from the current one upwards that is a project: it holds ``build.py``, or a ``config.json``
that is a loon configuration (a JSON object with no keys or with one of its sections, or
not valid JSON at all, so that a syntax error is reported; an unrelated tool's valid
config.json in a parent folder is passed by). Never the package's
location, so an installed ``loon`` (site-packages) acts on the clone it runs in.
"""

from __future__ import annotations

import os
from pathlib import Path

from loon_supervisor.errors import LoonError

ENV_VAR = "LOON_PROJECT_ROOT"
MARKERS = ("build.py", "config.json")


class NoProjectError(LoonError):
    """Run outside any project directory: a usage error."""

    exit_code = 2


SECTIONS = frozenset({"$schema", "generalSettings", "mySqlSettings", "minioSettings",
                      "nginxSettings", "localDataSettings", "deploymentSettings"})


def _loon_config(path: Path) -> bool:
    """True for a config.json this tool would read (not another tool's)."""
    import json

    from loon_supervisor.bounded import MiB, UnboundedInput, read_bounded

    try:
        data = json.loads(read_bounded(path, MiB))
    except ValueError:  # broken JSON: an operator's config mid-edit; validate says what
        return True
    except (OSError, RecursionError, UnboundedInput):
        return False
    return isinstance(data, dict) and (not data or bool(SECTIONS & data.keys()))


def is_project(directory: Path) -> bool:
    """A folder with build.py, or with a config.json that is a loon configuration."""
    try:
        return (directory / "build.py").is_file() or (
            (directory / "config.json").is_file() and _loon_config(directory / "config.json"))
    except OSError:  # a parent this user may not enter
        return False


def find_project(start: Path) -> Path | None:
    """The nearest of ``start`` and its parents that :func:`is_project`."""
    for directory in (start, *start.parents):
        if is_project(directory):
            return directory
    return None


def use_project_dir(path: Path) -> Path:
    """Pin the project for this process and its children (the background logger)."""
    root = path.resolve()
    if not root.is_dir():
        raise NoProjectError(f"--project-dir {path} is not a directory; pass the directory "
                             "of your clone (the one holding build.py)")
    if not is_project(root):
        raise NoProjectError(f"--project-dir {path} is not a loon-supervisor project (no "
                             "build.py, and no config.json with loon's sections); pass the "
                             "directory of your clone")
    os.environ[ENV_VAR] = str(root)
    return root


def project_root() -> Path:
    """The project directory: LOON_PROJECT_ROOT, else found from the current directory.

    :raises NoProjectError: when neither gives one.
    """
    explicit = os.environ.get(ENV_VAR)
    if explicit:
        return Path(explicit)
    found = find_project(Path.cwd().resolve())
    if found is None:
        raise NoProjectError(
            f"{Path.cwd()} is not inside a loon-supervisor project (no build.py or "
            "config.json here or above); cd into your clone or pass --project-dir")
    os.environ[ENV_VAR] = str(found)  # children (the background logger) see the same one
    return found


def default_config() -> Path:
    """config.json of the project (the default of --config-file)."""
    return project_root() / "config.json"


def build_files_dir() -> Path:
    return project_root() / ".build-files"


class EscapesBuildFiles(LoonError):
    """A name that would put a file outside ``.build-files/`` (a usage error)."""

    exit_code = 2


def build_file(name: str, base: Path | None = None) -> Path:
    """``.build-files/<name>`` (or ``base/<name>``): the one way to name a file there from
    something an operator chose (a deployment name, an env file name); refuses any name
    that is not a single plain file name.

    :raises EscapesBuildFiles: for ``..``, a separator, a NUL or an empty name.
    """
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise EscapesBuildFiles(f"{name!r} is not a plain file name and would leave "
                                ".build-files/; use letters, digits, '_', '.' and '-' only")
    return (build_files_dir() if base is None else base) / name


def logs_dir() -> Path:
    return project_root() / "logs"
