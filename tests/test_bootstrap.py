"""build.py's bootstrap on a clean clone with a Python that lacks the dependencies:
interrupted after 1 s, the next run repairs the venv by itself; a venv without pip is
repaired too; no untracked build/ appears; the install is editable (a pull takes effect)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, base_config

# Each builds a virtualenv and installs the project from the package index (10-15 s).
pytestmark = pytest.mark.installs

SYSTEM_PYTHON = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin") or "python3"


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """The working tree's tracked files in a fresh git repository."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    dest = tmp_path / "clone"
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], cwd=dest, check=True)
    subprocess.run([*git, "add", "-A"], cwd=dest, check=True)
    subprocess.run([*git, "commit", "-qm", "clone"], cwd=dest, check=True)
    (dest / "config.json").write_text(json.dumps(base_config(tmp_path / "data")))
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import aiodocker"], capture_output=True)
    assert probe.returncode != 0, "the system python has the dependencies: nothing to test"
    return dest


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if not k.upper().startswith(("LOON_", "VIRTUAL_ENV", "PYTHON"))}


def _validate(clone: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SYSTEM_PYTHON, "build.py", "-e"], cwd=clone, env=_env(),
                          capture_output=True, text=True, timeout=600)


def _untracked(clone: Path) -> list[str]:
    out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=clone,
                         capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line.strip()]


def test_interrupted_bootstrap_then_rerun_succeeds(clone: Path) -> None:
    proc = subprocess.Popen([SYSTEM_PYTHON, "build.py", "-e"], cwd=clone, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl+C reaches the whole foreground group
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (clone / ".build-files" / ".venv" / ".installed").exists()

    result = _validate(clone)
    assert result.returncode == 0, result.stderr
    assert "config.json is valid" in result.stdout
    assert _untracked(clone) == []  # .build-files/ and *.egg-info are ignored; no build/
    assert not (clone / "build").exists()

    # Editable: the venv imports the checkout, so a `git pull` takes effect.
    python = clone / ".build-files" / ".venv" / "bin" / "python"
    where = subprocess.run([str(python), "-c", "import loon_supervisor; "
                            "print(loon_supervisor.__file__)"], cwd="/", env=_env(),
                           capture_output=True, text=True, check=True).stdout.strip()
    assert where == str(clone / "loon_supervisor" / "__init__.py")


def test_venv_without_pip_is_repaired(clone: Path) -> None:
    subprocess.run([SYSTEM_PYTHON, "-m", "venv", "--without-pip",
                    str(clone / ".build-files" / ".venv")], check=True)
    result = _validate(clone)
    assert result.returncode == 0, result.stderr
    assert "No module named pip" not in result.stderr
    assert _untracked(clone) == []
