"""Which source the service logs are read from, and the host directory of the fast path.

``deploymentSettings.logSource``: ``exec`` follows each file with a ``tail`` exec'd in the
container (any engine, local or remote); ``hostdir`` bind-mounts
``.build-files/service-logs/<deployment>/`` at the image's log dir and reads the files on
this machine (streams/hostdir_source.py); ``auto`` takes hostdir when the engine is local.
The choice is made once, when the container is created (the bind is part of it), and kept
in the deployment's state file: the background logger, ``attach``, ``status`` and ``down``
read it from there instead of deciding again.
"""

from __future__ import annotations

import secrets
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import aiodocker

from loon_supervisor.engine import exec_streams
from loon_supervisor.errors import ConfigError, LoonError, Problem

EXEC, HOSTDIR = "exec", "hostdir"
STATE_KEY = "log_source"


@dataclass(frozen=True)
class SourceChoice:
    """``kind`` (exec | hostdir), the host directory for hostdir, and why (for out.log)."""

    kind: str
    host_dir: Path | None
    reason: str

    def to_state(self) -> dict:
        return {"kind": self.kind, "host_dir": str(self.host_dir) if self.host_dir else None}

    @classmethod
    def from_state(cls, state: dict | None) -> SourceChoice:
        """What an earlier ``up`` chose; a state without it (older loggers) is exec."""
        data = (state or {}).get(STATE_KEY) or {}
        if data.get("kind") == HOSTDIR and data.get("host_dir"):
            return cls(HOSTDIR, Path(data["host_dir"]), "recorded by up")
        return cls(EXEC, None, "recorded by up" if data else "no source recorded")

    def describe(self) -> str:
        """One phrase for out.log and ``loon status``."""
        if self.kind == HOSTDIR:
            return f"host directory {self.host_dir} (inotify, no exec)"
        return "exec of tail in the container"


def host_log_dir(build_files: Path, deployment: str) -> Path:
    """Where a deployment's service logs live on this machine with the hostdir source."""
    return build_files / "service-logs" / deployment


def choose(setting: str, remote: bool, build_files: Path, deployment: str) -> SourceChoice:
    """Decide from ``deploymentSettings.logSource`` and the engine's place.

    :raises ConfigError: ``hostdir`` asked for with a remote engine (its files would be on
        the engine's machine, not this one).
    """
    if setting == EXEC:
        return SourceChoice(EXEC, None, "deploymentSettings.logSource is exec")
    if remote:
        if setting == HOSTDIR:
            raise ConfigError([Problem(
                "deploymentSettings.logSource",
                '"hostdir" needs a local Docker engine, but this one is remote',
                'set it to "auto" or "exec"')])
        return SourceChoice(EXEC, None, "the engine is remote")
    why = ("deploymentSettings.logSource is hostdir" if setting == HOSTDIR
           else "the engine is local")
    return SourceChoice(HOSTDIR, host_log_dir(build_files, deployment), why)


def prepare_host_dir(path: Path) -> None:
    """A fresh, empty directory for a new container (the exec path gets a fresh anonymous
    volume per container; the files of an earlier container must not be resumed)."""
    remove_host_dir(path)
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o755)


def remove_host_dir(path: Path) -> str | None:
    """Remove the directory after the final collection; None, or one sentence saying what
    could not be removed (files a container wrote under another owner)."""
    if not path.exists():
        return None
    problems: list[str] = []
    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=lambda _f, p, e: problems.append(f"{p}: {e}"))
    else:
        shutil.rmtree(path, onerror=lambda _f, p, e: problems.append(f"{p}: {e[1]}"))
    if problems and path.exists():
        return (f"could not remove {path} ({problems[0]}); remove it yourself, e.g. with "
                f"`sudo rm -r {path}`")
    return None


def from_container(info: dict | None, log_dir: str) -> SourceChoice:
    """The source a running container was made for, from its mounts: a bind of an
    existing local directory at ``log_dir`` is hostdir (``attach`` without a state file)."""
    for m in (info or {}).get("Mounts") or []:
        if m.get("Type") == "bind" and m.get("Destination", "").rstrip("/") == \
                log_dir.rstrip("/") and Path(m.get("Source", "")).is_dir():
            return SourceChoice(HOSTDIR, Path(m["Source"]), "the container's log dir is a bind")
    return SourceChoice(EXEC, None, "the container's log dir is not a bind of this machine")


async def bind_is_shared(docker: aiodocker.Docker, cid: str, log_dir: str,
                         host_dir: Path) -> bool:
    """Does the container see this machine's ``host_dir`` at ``log_dir``? A socket that
    looks local can still lead to an engine on another machine or in a VM whose binds name
    its own paths; one marker file and one exec tell."""
    marker = f".loon-bind-{secrets.token_hex(6)}"
    try:
        (host_dir / marker).touch()
    except OSError:
        return False
    try:
        code, _ = await exec_streams.run_capture(
            docker, cid, ["sh", "-c", 'test -e "$1"', "probe", f"{log_dir}/{marker}"])
        return code == 0
    except LoonError:
        return False
    finally:
        (host_dir / marker).unlink(missing_ok=True)
