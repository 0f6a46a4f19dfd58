"""Host directories the container mounts: refuse the dangerous ones, check or create them.

MariaDB's start runs ``chown -R mysql:mysql`` on its data directory and MinIO writes into
its own, so a volume of ``/``, a system directory, the project checkout, or two volumes
that overlap would damage the host. Only ``up`` creates missing directories; ``validate``
and ``config`` only say what ``up`` would create.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from loon_supervisor.errors import Problem
from loon_supervisor.paths import project_root

SYSTEM_DIRS = frozenset({
    "/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32",
    "/media", "/mnt", "/opt", "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp",
    "/usr", "/usr/bin", "/usr/lib", "/usr/local", "/usr/sbin", "/usr/share", "/var",
    "/var/lib", "/var/log", "/var/run", "/var/tmp", "/var/lib/docker",
})
"""Never a data directory themselves."""

SYSTEM_TREES = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/proc", "/run",
                "/sbin", "/sys", "/usr/bin", "/usr/lib", "/usr/sbin", "/usr/share",
                "/var/lib/docker")
"""Nothing inside these is a data directory either."""

WRITABLE = ("mySqlSettings.sourceVolumeLocation", "minioSettings.sourceVolumeLocation")


def _real(path: str) -> PurePosixPath:
    return PurePosixPath(os.path.realpath(path))


def _inside(child: PurePosixPath, parent: PurePosixPath) -> bool:
    return child == parent or parent in child.parents


def check_volume_paths(dirs: list[tuple[str, str]], local: bool = True) -> list[Problem]:
    """Dangerous or overlapping volume directories; checks symlinks' targets too.

    :param local: False with a remote engine: the directories are on the engine's machine,
        so only their names are checked (no symlink of this machine resolved, no comparison
        with this machine's home or checkout).
    """
    problems: list[Problem] = []
    real_of = _real if local else PurePosixPath
    home = _real(str(Path.home())) if local else None
    root = _real(str(project_root())) if local else None
    for json_path, directory in dirs:
        real = real_of(directory)
        shown = directory if str(real) == directory else f"{directory} (resolves to {real})"
        if str(real) in SYSTEM_DIRS or real == home:
            problems.append(Problem(json_path, f"{shown} is a system directory; the container "
                                    "would take it over (MariaDB chowns its data directory)",
                                    "choose a dedicated directory such as /srv/loon/mysql"))
        elif any(_inside(real, PurePosixPath(t)) for t in SYSTEM_TREES):
            problems.append(Problem(json_path, f"{shown} is inside a system directory",
                                    "choose a dedicated directory such as /srv/loon/mysql"))
        elif root is not None and json_path in WRITABLE and _inside(root, real):
            problems.append(Problem(json_path, f"{shown} contains this project's checkout "
                                    f"({root}), which the container would take over",
                                    "choose a directory of its own, e.g. "
                                    f"{root}/data/mysql"))
    for i, (path_a, dir_a) in enumerate(dirs):
        for path_b, dir_b in dirs[i + 1:]:
            real_a, real_b = real_of(dir_a), real_of(dir_b)
            if _inside(real_a, real_b) or _inside(real_b, real_a):
                problems.append(Problem(path_b, f"{dir_b} overlaps {path_a} ({dir_a}); each "
                                        "service needs a directory of its own",
                                        "use separate directories, neither inside the other"))
    return problems


def _unusable(path: Path) -> str | None:
    """Why the file system refuses the path itself (too long a name), if it does."""
    try:
        os.stat(path)
    except (PermissionError, FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        return exc.strerror or str(exc)
    except ValueError as exc:  # an embedded NUL (the model reports it too)
        return str(exc)
    return None


def _denied(path: Path) -> Path | None:
    """The directory on the way to ``path`` that refuses this user, if one does (Python
    3.11's ``is_dir`` raises PermissionError there instead of answering)."""
    try:
        os.stat(path)
    except PermissionError:
        return next((a for a in reversed(path.parents) if not os.access(a, os.X_OK)),
                    path.parent)
    except OSError:
        pass
    return None


def check_volume_dirs(dirs: list[tuple[str, str]], create: bool
                      ) -> tuple[list[str], list[Problem]]:
    """Check each directory exists (or can be made); create it only when ``create``."""
    said: list[str] = []
    problems = check_volume_paths(dirs)
    if problems:
        return said, problems
    for json_path, directory in dirs:
        p = Path(directory)
        unusable = _unusable(p)
        if unusable:
            problems.append(Problem(json_path, f"{directory} cannot be used ({unusable})",
                                    "choose a shorter, plain directory path"))
            continue
        denied = _denied(p)
        if denied is not None:
            problems.append(Problem(json_path, f"{directory} cannot be reached by this user "
                                    f"({denied} denies access)", "choose a directory this "
                                    "user can write, or run as a user who can reach it"))
            continue
        if p.is_dir():
            if not os.access(p, os.W_OK | os.X_OK):
                problems.append(Problem(json_path, f"{directory} is not writable by this user",
                                        "fix its permissions or choose another directory"))
            continue
        if p.exists() or p.is_symlink():
            problems.append(Problem(json_path, f"{directory} exists but is not a directory",
                                    "remove it or choose another path"))
            continue
        if not create:
            parent = next((a for a in p.parents if a.exists()), Path("/"))
            if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
                problems.append(Problem(json_path, f"{directory} does not exist and cannot be "
                                        f"created ({parent} is not a writable directory)",
                                        "create it yourself or choose another directory"))
            else:
                said.append(f"{directory} ({json_path}) does not exist yet; up creates it")
            continue
        try:
            p.mkdir(parents=True, exist_ok=True)
            said.append(f"created {directory} ({json_path})")
        except OSError as exc:
            problems.append(Problem(json_path, f"{directory} cannot be created "
                                    f"({exc.strerror or exc})",
                                    "create it yourself or choose another directory"))
    return said, problems
