"""Issue 29: the second bad-input pass. Every case failed on main 5e29567; each ends in one
sentence on stderr and the documented exit code, never a traceback, never a file written
outside the project's .build-files/. Engine-free (engine verbs point at a missing socket)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import base_config, write_config

NO_ENGINE = "unix:///nonexistent/docker.sock"


def loon(*args: str, cwd: Path, env: dict[str, str] | None = None,
         timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The real front end in a subprocess, with no LOON_* from the caller and no engine."""
    base = {k: v for k, v in os.environ.items()
            if not k.upper().startswith(("LOON_", "DOCKER_"))}
    base.update(LOON_PROJECT_ROOT=str(cwd / "project"), DOCKER_HOST=NO_ENGINE)
    base.update(env or {})
    done = subprocess.run([sys.executable, "-m", "loon_supervisor", *args], cwd=cwd, env=base,
                          capture_output=True, text=True, timeout=timeout)
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    return done


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture
def config(tmp_path: Path, project: Path) -> Path:
    return write_config(project / "config.json", base_config(tmp_path / "data"))


# --- 2. deployment names ----------------------------------------------------------------

ESCAPES = ["../../../escaped/pwn", "a/b", "..", "a", "-x", "x" * 300, "a b"]


@pytest.mark.parametrize("verb", ["down", "status", "attach", "ps", "logs"])
@pytest.mark.parametrize("name", ESCAPES)
def test_name_flag_checked_before_any_path(tmp_path: Path, config: Path, verb: str,
                                           name: str) -> None:
    before = files_under(tmp_path)
    done = loon(verb, "--name", name, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "--name" in done.stderr and "container name" in done.stderr or \
        "characters long" in done.stderr
    assert files_under(tmp_path) == before


@pytest.mark.parametrize("name", ["../../../escaped/pwn", "a/b", "a"])
def test_name_from_config_or_override_checked(tmp_path: Path, project: Path, name: str
                                              ) -> None:
    write_config(project / "config.json",
                 base_config(tmp_path / "data", containerName=name))
    before = files_under(tmp_path)
    done = loon("down", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "deploymentSettings.containerName" in done.stderr
    assert loon("validate", cwd=tmp_path).returncode == 2
    write_config(project / "config.json", base_config(tmp_path / "data"))
    done = loon("status", cwd=tmp_path,
                env={"LOON_DEPLOYMENTSETTINGS__CONTAINERNAME": name})
    assert done.returncode == 2, done.stderr
    assert "LOON_DEPLOYMENTSETTINGS__CONTAINERNAME" in done.stderr
    assert files_under(tmp_path) == before


def test_long_container_name_refused_at_validation(tmp_path: Path, project: Path) -> None:
    write_config(project / "config.json",
                 base_config(tmp_path / "data", containerName="x" * 300))
    done = loon("validate", cwd=tmp_path)
    assert done.returncode == 2
    assert "deploymentSettings.containerName: is longer than 128 characters" in done.stderr


def test_build_file_refuses_escapes(project: Path) -> None:
    from loon_supervisor.paths import EscapesBuildFiles, build_file

    assert build_file("state.x.json") == project / ".build-files" / "state.x.json"
    for bad in ("..", "../x", "a/b", "", "a\0b"):
        with pytest.raises(EscapesBuildFiles):
            build_file(bad)
