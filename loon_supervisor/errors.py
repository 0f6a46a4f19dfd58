"""Every error the supervisor reports to an operator.

::

    LoonError                   exit code carried by each class
    ├── ConfigError (2)         config.json or flags are wrong; carries every problem at once
    ├── EngineError (1)         the Docker engine refused or is unreachable
    │   ├── EngineUnreachable
    │   ├── ImageContractError  an image lacks a required org.loon.* label
    │   ├── BuildFailed         a Dockerfile step failed
    │   └── ContainerConflict   a container with the deployment's name exists already

A service or the container dying while followed is not an exception: the follow phase
records it on the run, tears down, and the supervisor reports it with exit code 1.

The CLI turns these into one clear message and the exit code; nothing else should reach
the operator as a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass


class LoonError(Exception):
    """Base class: ``str(err)`` is the operator-facing message."""

    exit_code: int = 1


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the configuration: where, what, and how to fix it."""

    path: str
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message} — {self.fix}"


class ConfigError(LoonError):
    exit_code = 2

    def __init__(self, problems: list[Problem], source: str = "") -> None:
        self.problems = problems
        self.source = source
        head = f"{source} has {len(problems)} problem(s):" if source else "configuration problems:"
        super().__init__("\n".join([head, *(f"  {p}" for p in problems)]))


class EngineError(LoonError):
    pass


class EngineUnreachable(EngineError):
    pass


class ImageContractError(EngineError):
    pass


class BuildFailed(EngineError):
    def __init__(self, step: str, error: str) -> None:
        self.step = step
        self.error = error
        super().__init__(f"build failed at {step or 'an unknown step'}: {error}")


class ContainerConflict(EngineError):
    pass


class FileSystemRefused(LoonError):
    """The file system refused a read or write the verb needs (permissions, a directory
    where a file belongs, a full disk): one sentence instead of the OSError's traceback."""


_ACCESS = {1, 13, 30}  # EPERM, EACCES, EROFS: this user, not the input, is the problem


def from_os_error(exc: OSError) -> FileSystemRefused:
    """The sentence an operator needs for ``exc``: which file, what is wrong, what to do.

    Missing rights exit 2 (run as another user, or grant them: a usage matter); anything
    else (a full disk, a directory in a file's place) exits 1, the environment's fault.
    """
    import errno
    import getpass
    import os

    where = str(exc.filename) if exc.filename is not None else "a file"
    reason = exc.strerror or str(exc)
    if exc.errno in _ACCESS:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = f"uid {os.getuid()}"
        err = FileSystemRefused(
            f"{where}: {reason.lower()} for user {user}; this verb needs write access to the "
            "project's .build-files/ and logs/ (and read access to config.json): run it as "
            "the user who owns the clone, or give this user those rights (README, "
            "'Running as a non-root user')")
        err.exit_code = 2
        return err
    if exc.errno == errno.EISDIR:
        return FileSystemRefused(f"{where} is a directory where a file belongs; remove or "
                                 "rename it")
    if exc.errno == errno.ENOTDIR:
        return FileSystemRefused(f"{where}: a part of this path is a file where a directory "
                                 "belongs; remove or rename it")
    if exc.errno == errno.ENOSPC:
        return FileSystemRefused(f"{where}: no space left on the device; free some space")
    return FileSystemRefused(f"{where}: {reason}; check that path")


def signal_exit_code(signum: int) -> int:
    """The shell's convention for a process stopped by a signal (130 for SIGINT)."""
    return 128 + signum


def operator_error(exc: BaseException) -> LoonError:
    """The LoonError inside ``exc`` (task groups wrap them), an OSError as one; re-raise
    anything else."""
    if isinstance(exc, LoonError):
        return exc
    if isinstance(exc, OSError):
        return from_os_error(exc)
    if isinstance(exc, BaseExceptionGroup):
        matched, rest = exc.split((LoonError, OSError))
        if matched is not None and rest is None:
            leaf: BaseException = matched
            while isinstance(leaf, BaseExceptionGroup):
                leaf = leaf.exceptions[0]
            if isinstance(leaf, OSError):
                return from_os_error(leaf)
            assert isinstance(leaf, LoonError)
            return leaf
    raise exc


def report(exc: LoonError) -> int:
    """One sentence on stderr (config problems as their list); the exit code."""
    import sys

    print(str(exc) if exc.exit_code == 2 else f"error: {exc}", file=sys.stderr)
    return exc.exit_code
