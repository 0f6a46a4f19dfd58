"""One project directory, resolved one way, and the session `loon logs` picks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loon_supervisor import paths
from loon_supervisor.lifecycle.identity import resolve
from loon_supervisor.sinks.session_pick import pick_session


@pytest.fixture
def no_pin(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv(paths.ENV_VAR, raising=False)
    return monkeypatch


def test_nearest_parent_with_a_marker(tmp_path: Path, no_pin: pytest.MonkeyPatch) -> None:
    (tmp_path / "config.json").write_text("{}")
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    no_pin.chdir(deep)
    assert paths.project_root() == tmp_path.resolve()
    assert paths.logs_dir() == tmp_path.resolve() / "logs"


def test_outside_any_project_is_a_usage_error(tmp_path: Path,
                                              no_pin: pytest.MonkeyPatch) -> None:
    no_pin.chdir(tmp_path)
    with pytest.raises(paths.NoProjectError) as info:
        paths.project_root()
    assert info.value.exit_code == 2 and "--project-dir" in str(info.value)
    assert "\n" not in str(info.value)


def test_env_var_wins_over_cwd(tmp_path: Path, no_pin: pytest.MonkeyPatch) -> None:
    (tmp_path / "build.py").write_text("")
    no_pin.chdir(tmp_path)
    no_pin.setenv(paths.ENV_VAR, "/elsewhere")
    assert paths.project_root() == Path("/elsewhere")


def test_never_the_package_location(tmp_path: Path, no_pin: pytest.MonkeyPatch) -> None:
    (tmp_path / "build.py").write_text("")
    no_pin.chdir(tmp_path)
    assert paths.build_files_dir() == tmp_path.resolve() / ".build-files"


def test_identity_honours_env_overrides(project: Path, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"deploymentSettings": {"containerName": "loon",
                                                         "imageTag": "loon:1"}}))
    assert resolve(config).name == "loon"
    monkeypatch.setenv("LOON_DEPLOYMENTSETTINGS__CONTAINERNAME", "prod-loon")
    ident = resolve(config)
    assert (ident.name, ident.image) == ("prod-loon", "loon:1")
    assert ident.state_path == project / ".build-files" / "state.prod-loon.json"
    assert resolve(config, "explicit").name == "explicit"


def test_identity_of_a_broken_config_is_the_default(project: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{ not json")
    assert resolve(bad).name == "loon"
    assert resolve(tmp_path / "missing.json").name == "loon"


def session(root: Path, name: str, *files: str) -> Path:
    path = root / name
    path.mkdir(parents=True)
    for f in files:
        (path / f).write_text("x\n")
    return path


def test_pick_skips_sessions_with_only_out_log(tmp_path: Path) -> None:
    good = session(tmp_path, "logs_2026-01-01_10-00-00", "out.log", "container.log", "mysql.log")
    session(tmp_path, "logs_2026-01-01_11-00-00", "out.log")
    pick = pick_session(tmp_path)
    assert pick is not None and pick.session == good
    assert pick.note and "logs_2026-01-01_11-00-00 has no service logs" in pick.note


def test_pick_falls_back_to_out_log_and_says_why(tmp_path: Path) -> None:
    only = session(tmp_path, "logs_2026-01-01_11-00-00", "out.log")
    pick = pick_session(tmp_path)
    assert pick is not None and pick.session == only and pick.only_out_log
    assert pick.note and "out.log" in pick.note


def test_pick_prefers_the_deployments_current_session(tmp_path: Path) -> None:
    current = session(tmp_path, "logs_2026-01-01_09-00-00", "out.log")
    session(tmp_path, "logs_2026-01-01_10-00-00", "out.log", "redis.log")
    assert pick_session(tmp_path, current) == pick_session(tmp_path, current)
    assert pick_session(tmp_path, current).session == current  # type: ignore[union-attr]
    assert pick_session(tmp_path / "none") is None
