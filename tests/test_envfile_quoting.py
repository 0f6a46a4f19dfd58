"""Passwords as operators type them: every value without a line break is accepted, read
back exactly by python-dotenv (the supervisor's reader), with one warning by name when
docker compose would read it differently."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from loon_supervisor.spec.envfile import (
    compose_reads_differently,
    compose_warnings,
    read_env_file,
    write_env_file,
)
from tests.conftest import ROOT, base_config, write_config

OPERATOR_PASSWORD = "p@ss w\"o$rd#1='x"


def test_operators_password_reads_back_exactly(tmp_path: Path) -> None:
    path = write_env_file(tmp_path / ".env", {"DATABASE_PASSWORD": OPERATOR_PASSWORD, "B": "y"})
    assert read_env_file(path) == {"DATABASE_PASSWORD": OPERATOR_PASSWORD, "B": "y"}
    assert compose_reads_differently(OPERATOR_PASSWORD)


def test_warning_names_the_variable_never_the_value() -> None:
    warnings = compose_warnings({"DATABASE_PASSWORD": OPERATOR_PASSWORD, "OK": "plain"})
    assert len(warnings) == 1
    assert "DATABASE_PASSWORD (mySqlSettings.databasePassword)" in warnings[0]
    assert OPERATOR_PASSWORD not in warnings[0] and "p@ss" not in warnings[0]


def test_validate_accepts_it_and_warns_once(tmp_path: Path) -> None:
    data = base_config(tmp_path / "data")
    data["mySqlSettings"]["databasePassword"] = OPERATOR_PASSWORD
    config = write_config(tmp_path / "config.json", data)
    project = tmp_path / "project"
    result = subprocess.run([sys.executable, str(ROOT / "build.py"), "-e", "--config-file",
                             str(config)], capture_output=True, text=True, cwd=tmp_path,
                            env={"PATH": "/usr/bin:/bin", "LOON_PROJECT_ROOT": str(project)})
    said = result.stdout + result.stderr
    assert result.returncode == 0, said
    assert said.count("would read DATABASE_PASSWORD") == 1
    assert "p@ss" not in said
    env = read_env_file(project / ".build-files" / ".env")
    assert env["DATABASE_PASSWORD"] == OPERATOR_PASSWORD
