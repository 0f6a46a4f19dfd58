"""Which source the service logs are read from, and the host directory of the fast path.

``deploymentSettings.logSource``: ``exec`` follows each file with a ``tail`` exec'd in the
container (any engine, local or remote); ``hostdir`` bind-mounts
``.build-files/service-logs/<deployment>/`` at the image's log dir and reads the files on
this machine (streams/sources/hostdir.py); ``auto`` takes hostdir when the engine is local.
The choice is made once, when the container is created (the bind is part of it), and kept
in the deployment's state file (``log_source``): the background logger, ``attach``,
``status`` and ``down`` read it from there instead of deciding again.
"""

from __future__ import annotations

import secrets
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from loon_supervisor.engine.base import CommandRunner, ContainerFiles
from loon_supervisor.engine.records import ContainerInfo
from loon_supervisor.errors import ConfigError, LoonError, Problem
from loon_supervisor.streams.sources.base import LogSource
from loon_supervisor.streams.sources.exec import ExecSource
from loon_supervisor.streams.sources.hostdir import HostDirSource

EXEC, HOSTDIR = "exec", "hostdir"


class SourceEngine(ContainerFiles, CommandRunner, Protocol):
    """What choosing and checking a source needs of the engine: its container files (the
    exec source) and a command in the container (the bind check)."""


@dataclass(frozen=True)
class SourceChoice:
    """``kind`` (exec | hostdir), the host directory for hostdir, and why (for out.log)."""

    kind: str
    host_dir: Path | None
    reason: str

    def describe(self) -> str:
        """One phrase for out.log and ``loon status``."""
        if self.kind == HOSTDIR:
            return f"hostdir ({self.host_dir}, inotify, no exec)"
        return "exec (tail in the container)"


def host_log_dir(build_files: Path, deployment: str) -> Path:
    """Where a deployment's service logs live on this machine with the hostdir source."""
    from loon_supervisor.paths import build_file

    return build_file(deployment, build_files / "service-logs")


def host_dir_of(kind: str, build_files: Path, deployment: str) -> Path | None:
    """The staging directory a recorded choice uses, or None for exec."""
    return host_log_dir(build_files, deployment) if kind == HOSTDIR else None


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


def recorded(kind: str, build_files: Path, deployment: str) -> SourceChoice:
    """The choice an earlier ``up`` recorded in the state file (``log_source``)."""
    if kind == HOSTDIR:
        return SourceChoice(HOSTDIR, host_log_dir(build_files, deployment), "recorded")
    return SourceChoice(EXEC, None, "recorded")


def from_container(info: ContainerInfo | None, log_dir: str) -> SourceChoice:
    """The source a running container was made for, from its mounts: a bind of an
    existing local directory at ``log_dir`` is hostdir (``attach`` without a state file)."""
    for m in info.mounts if info is not None else ():
        if m.type == "bind" and m.destination.rstrip("/") == log_dir.rstrip("/") \
                and Path(m.source).is_dir():
            return SourceChoice(HOSTDIR, Path(m.source), "the container's log dir is a bind")
    return SourceChoice(EXEC, None, "the container's log dir is not a bind of this machine")


class Sources:
    """The source factory a :class:`~loon_supervisor.lifecycle.deployment.Deployment`
    takes (``source=``): one source per container id, of the kind chosen. ``verify`` may
    turn a hostdir choice into exec before the first follower starts."""

    def __init__(self, choice: SourceChoice, engine: SourceEngine, log_dir: str) -> None:
        self.choice = choice
        self._engine = engine
        self._log_dir = log_dir

    @property
    def kind(self) -> str:
        return self.choice.kind

    def __call__(self, cid: str) -> LogSource:
        if self.choice.kind == HOSTDIR and self.choice.host_dir is not None:
            return HostDirSource(self._log_dir, self.choice.host_dir)
        return ExecSource(self._engine, cid)

    async def verify(self, cid: str, say: Callable[[str], None]) -> None:
        """Does the container see this machine's host dir at the log dir? A socket that
        looks local can lead to an engine in a VM or on another machine whose binds name
        its own paths: one marker file and one exec tell. If not, fall back to exec."""
        host = self.choice.host_dir
        if self.choice.kind != HOSTDIR or host is None:
            return
        marker = f".loon-bind-{secrets.token_hex(6)}"
        shared = False
        try:
            (host / marker).touch()
            code, _ = await self._engine.run_capture(
                cid, ["sh", "-c", 'test -e "$1"', "probe", f"{self._log_dir}/{marker}"])
            shared = code == 0
        except (OSError, LoonError):
            shared = False
        finally:
            (host / marker).unlink(missing_ok=True)
        if not shared:
            self.choice = SourceChoice(EXEC, None, "the container does not see the host "
                                       "directory (an engine in a VM or behind a forwarded "
                                       "socket?)")
            say(f"log source: falling back to exec: {self.choice.reason}")


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


def forget_host_dir(build_files: Path, deployment: str, say: Callable[[str], None]) -> None:
    """After the container is removed and its bytes collected: its host dir goes too."""
    problem = remove_host_dir(host_log_dir(build_files, deployment))
    if problem:
        say(problem)
