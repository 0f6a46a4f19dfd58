"""Shared fixtures. Engine tests never skip: a missing engine is a failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated project root: .build-files/ and logs/ go to a temp dir."""
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.setenv("LOON_PROJECT_ROOT", str(root))
    for key in list(os.environ):
        if key.upper().startswith("LOON_") and key != "LOON_PROJECT_ROOT":
            monkeypatch.delenv(key)
    return root


def base_config(data_dir: Path, **deployment: Any) -> dict[str, Any]:
    return {
        "generalSettings": {"useHttp": True, "environment": "production",
                            "baseUrl": "localhost"},
        "mySqlSettings": {"databaseName": "loon", "databaseUser": "user",
                          "databasePassword": "user_pass", "databaseRootPassword": "root_pass",
                          "sourceVolumeLocation": str(data_dir / "mysql-data")},
        "minioSettings": {"minioStorageAccessKey": "admin",
                          "minioStorageSecretKey": "minioadmin",
                          "sourceVolumeLocation": str(data_dir / "minio-data")},
        **({"deploymentSettings": deployment} if deployment else {}),
    }


def write_config(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(json.dumps(data, indent=2))
    return path


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test that uses the engine fixture (itself or through another fixture) must carry
    the ``engine`` marker, so ``pytest -m "not engine"`` is a true engine-free run: one
    without it stops the collection with its name and the fix."""
    unmarked = [i.nodeid for i in items
                if "engine" in getattr(i, "fixturenames", ()) and i.get_closest_marker("engine") is None]
    if unmarked:
        raise pytest.UsageError(
            f"{len(unmarked)} test(s) use the engine fixture without @pytest.mark.engine "
            "(add the marker, or pytestmark = pytest.mark.engine for the module): "
            + ", ".join(unmarked[:10]))


FULL = os.environ.get("LOON_TEST_FULL") == "1"


def examples(full: int) -> int:
    """A property test's number of examples: all of them under scripts/test.sh (so CI), a
    quarter in a bare pytest run, the quick loop."""
    return full if FULL else max(10, full // 4)


def pytest_configure(config: pytest.Config) -> None:
    """A bare `pytest` is the quick loop: it leaves out the few tests that install the
    project from the package index (marker ``installs``, 10-15 s each, shown as
    deselected) unless ``LOON_TEST_FULL=1``, which scripts/test.sh (so CI) sets.

    The package is compiled once, before any worker starts: with PYTHONDONTWRITEBYTECODE=1
    (set on these machines and in CI) no process writes its bytecode, so each of the ~200
    `loon` and `build.py` runs the tests start compiled all 170 modules again (0.2-0.3 s
    each)."""
    if not hasattr(config, "workerinput"):  # the controller (or a run without workers)
        import compileall

        compileall.compile_dir(ROOT / "loon_supervisor", quiet=1)
    if not FULL:
        given = config.option.markexpr
        config.option.markexpr = f"({given}) and not installs" if given else "not installs"


def pytest_itemcollected(item: pytest.Item) -> None:
    """Engine tests share one engine and time its answers: under pytest-xdist (on by default,
    pyproject's addopts) they all go to one worker, one after another (--dist loadgroup)."""
    if item.get_closest_marker("engine") is not None:
        item.add_marker(pytest.mark.xdist_group("engine"))


@pytest.fixture(scope="session")
def engine() -> None:
    """Make sure a Docker engine answers (starting one on Debian as root), else fail."""
    result = subprocess.run(["bash", str(ROOT / "scripts" / "ensure-docker.sh")],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"no Docker engine: {result.stderr}")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def deploy(tmp_path: Path, engine: None):  # type: ignore[no-untyped-def]
    """Make test deployments (tests/engine_helpers.py); everything is removed afterwards."""
    from tests.engine_helpers import Deployment, make_deployment

    made: list[Deployment] = []

    def make(services: dict[str, str], **kw: Any) -> Deployment:
        d = make_deployment(tmp_path, services, **kw)
        made.append(d)
        return d
    yield make
    for d in made:
        d.cleanup()
