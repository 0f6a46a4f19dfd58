"""build.py: the seed's flags, mapped onto the loon app; run as real subprocesses."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.certs import make_pair
from tests.conftest import ROOT, base_config, write_config

sys.path.insert(0, str(ROOT))
import build  # noqa: E402


def run_build(args: list[str], cwd: Path, project: Path, python: str = sys.executable,
              timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOON_")}
    env["LOON_PROJECT_ROOT"] = str(project)
    return subprocess.run([python, str(ROOT / "build.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


C = build.ROOT / "config.json"  # beside build.py, wherever it runs from
UP = {"config_file": C, "env_file": ".env", "verbose": False, "detached": False,
      "replace": False}


@pytest.mark.parametrize("argv,expected", [
    ([], ("up", UP)),
    (["-v"], ("up", {**UP, "verbose": True})),
    (["--verbose", "--detached"], ("up", {**UP, "verbose": True, "detached": True})),
    (["-vd"], ("up", {**UP, "verbose": True, "detached": True})),
    (["-dv", "--env-file", ".env.production", "--config-file", "config-production.json"],
     ("up", {**UP, "verbose": True, "detached": True, "env_file": ".env.production",
             "config_file": Path("config-production.json")})),
    (["--replace"], ("up", {**UP, "replace": True})),
    (["-e"], ("validate", {"config_file": C, "env_file": ".env"})),
    (["--validate-build", "--env-file", "x"], ("validate", {"config_file": C, "env_file": "x"})),
    (["-D"], ("down", {"config_file": C})),
    (["-D", "--name", "prod"], ("down", {"config_file": C, "name": "prod"})),
    (["-ec", "other.json"], ("validate", {"config_file": Path("other.json"),
                                          "env_file": ".env"})),
    (["--down", "--config-file", "c.json"], ("down", {"config_file": Path("c.json")})),
    (["-ve"], ("validate", {"config_file": C, "env_file": ".env"})),
])
def test_flags_map_onto_loon_verbs(argv: list[str], expected: tuple[str, dict]) -> None:
    assert build.plan(build.parser().parse_args(argv)) == expected


def test_verbs_exist_with_those_arguments() -> None:
    import importlib
    import inspect

    for verb, kwargs in [("up", UP), ("validate", {"config_file": C, "env_file": ".env"}),
                         ("down", {"config_file": C})]:
        module = importlib.import_module(f"loon_supervisor.verbs.{verb}")
        inspect.signature(module.run).bind(build.options(verb, kwargs))


def test_help_lists_every_seed_flag(tmp_path: Path) -> None:
    for flag in ("-h", "--help"):
        out = run_build([flag], tmp_path, tmp_path).stdout
        for needle in ["-h, --help", "-v, --verbose", "-d, --detached", "-e, --validate-build",
                       "--env-file", "--config-file", "-D, --down", "exit codes"]:
            assert needle in out, needle


def test_unknown_flag_is_a_usage_error(tmp_path: Path) -> None:
    result = run_build(["-x"], tmp_path, tmp_path)
    assert result.returncode == 2 and "unrecognized arguments: -x" in result.stderr


def test_validate_writes_0600_env_file(tmp_path: Path) -> None:
    project = tmp_path / "p"
    config = write_config(tmp_path / "config.json", base_config(tmp_path))
    result = run_build(["-e", "--config-file", str(config), "--env-file", ".env.test"],
                       tmp_path, project)
    assert result.returncode == 0, result.stderr
    env = project / ".build-files" / ".env.test"
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    assert "user_pass" in env.read_text()
    assert "user_pass" not in result.stdout + result.stderr
    assert "up creates it" in result.stdout and not (tmp_path / "mysql-data").exists()


def test_example_config_validates(tmp_path: Path) -> None:
    result = run_build(["-e", "--config-file", str(ROOT / "config.example.json")], tmp_path,
                       tmp_path / "p")
    assert result.returncode == 0, result.stderr


def test_invalid_config_lists_all_problems_exit_2(tmp_path: Path) -> None:
    data = base_config(tmp_path)
    data["generalSettings"]["useHttp"] = "yes"
    data["mySqlSettings"]["databasePassword"] = 1234
    data["minioSettings"]["minioStorageSecretKey"] = "short"
    config = write_config(tmp_path / "config.json", data)
    result = run_build(["-e", "--config-file", str(config)], tmp_path, tmp_path / "p")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    for path in ["generalSettings.useHttp", "mySqlSettings.databasePassword",
                 "minioSettings.minioStorageSecretKey"]:
        assert f"  {path}: " in result.stderr
    assert not (tmp_path / "p" / ".build-files" / ".env").exists()


def test_missing_config_says_where(tmp_path: Path) -> None:
    result = run_build(["-e"], tmp_path, tmp_path / "p")  # the default is the project's file
    assert result.returncode == 2 and str(tmp_path / "p" / "config.json") in result.stderr
    assert "Traceback" not in result.stderr


def test_env_override_from_environment(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.json", base_config(tmp_path))
    env = dict(os.environ, LOON_PROJECT_ROOT=str(tmp_path / "p"),
               LOON_MYSQLSETTINGS__DATABASEPASSWORD="1234")
    result = subprocess.run([sys.executable, str(ROOT / "build.py"), "-e", "--config-file",
                             str(config)], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "DATABASE_PASSWORD='1234'" in (tmp_path / "p" / ".build-files" / ".env").read_text()


@pytest.mark.installs
def test_bootstraps_its_own_venv_when_dependencies_are_missing(tmp_path: Path) -> None:
    """With a bare interpreter, build.py makes .build-files/.venv, says so once, reuses it."""
    bare = getattr(sys, "_base_executable", None) or shutil.which("python3")
    check = subprocess.run([bare, "-c", "import aiodocker"], capture_output=True)
    if check.returncode == 0:
        pytest.fail(f"{bare} already has the dependencies; this test needs a bare python3")
    copy = tmp_path / "repo"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(
        ".venv", ".git", "logs", ".build-files", "__pycache__", "*.egg-info", ".pytest_cache",
        ".hypothesis"))
    config = write_config(tmp_path / "config.json", base_config(tmp_path))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOON_", "VIRTUAL_ENV"))}
    first = subprocess.run([bare, str(copy / "build.py"), "-e", "--config-file", str(config)],
                           env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    assert first.stderr.count("creating .build-files/.venv") == 1
    second = subprocess.run([bare, str(copy / "build.py"), "-e", "--config-file", str(config)],
                            env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0 and "creating" not in second.stderr
    assert (copy / ".build-files" / ".env").exists()


def test_unchanged_config_is_not_revalidated_but_changes_are(tmp_path: Path) -> None:
    project = tmp_path / "p"
    config = write_config(tmp_path / "config.json", base_config(tmp_path))
    first = run_build(["-e", "--config-file", str(config)], tmp_path, project)
    assert first.returncode == 0 and "wrote" in first.stdout
    second = run_build(["-e", "--config-file", str(config)], tmp_path, project)
    assert second.returncode == 0 and "is current" in second.stdout
    # A change in the file, in the environment, or a deleted env file: validated for real.
    data = base_config(tmp_path)
    data["generalSettings"]["useHttp"] = "yes"
    write_config(config, data)
    assert run_build(["-e", "--config-file", str(config)], tmp_path, project).returncode == 2
    data["generalSettings"]["useHttp"] = True
    data["generalSettings"]["baseUrl"] = "loon.example.org"
    write_config(config, data)
    assert "wrote" in run_build(["-e", "--config-file", str(config)], tmp_path, project).stdout
    env = dict(os.environ, LOON_PROJECT_ROOT=str(project),
               LOON_GENERALSETTINGS__USEHTTP="maybe")
    bad_env = subprocess.run([sys.executable, str(ROOT / "build.py"), "-e", "--config-file",
                              str(config)], env=env, capture_output=True, text=True)
    assert bad_env.returncode == 2
    (project / ".build-files" / ".env").unlink()
    again = run_build(["-e", "--config-file", str(config)], tmp_path, project)
    assert again.returncode == 0 and (project / ".build-files" / ".env").exists()


def test_stamp_still_checks_the_file_system(tmp_path: Path) -> None:
    project = tmp_path / "p"
    ssl = tmp_path / "ssl"
    (ssl / "c").mkdir(parents=True)
    make_pair(ssl / "c" / "cert.pem", ssl / "c" / "key.pem")
    data = base_config(tmp_path)
    data["generalSettings"]["useHttp"] = False
    data["nginxSettings"] = {"sourceVolumeLocation": str(ssl), "certFileLocation": "c/cert.pem",
                             "keyFileLocation": "c/key.pem"}
    config = write_config(tmp_path / "config.json", data)
    assert run_build(["-e", "--config-file", str(config)], tmp_path, project).returncode == 0
    (ssl / "c" / "key.pem").unlink()
    result = run_build(["-e", "--config-file", str(config)], tmp_path, project)
    assert result.returncode == 2 and "nginxSettings.keyFileLocation" in result.stderr


def test_config_default_is_beside_build_py_not_the_current_directory(tmp_path: Path) -> None:
    """Run from elsewhere without -c: build.py reads its own directory's config.json (the
    README's claim); a -c PATH is taken from the current directory like any path."""
    project = tmp_path / "clone"
    project.mkdir()
    shutil.copy(ROOT / "build.py", project / "build.py")
    write_config(project / "config.json", base_config(tmp_path / "data"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOON_")}
    env["PYTHONPATH"] = str(ROOT)  # the package; the project is the copy's directory
    r = subprocess.run([sys.executable, str(project / "build.py"), "-e"], cwd=elsewhere,
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (project / ".build-files" / ".env").is_file()
    assert not (elsewhere / ".build-files").exists()
    assert "LOON_PROJECT_ROOT" not in r.stderr
    missing = subprocess.run([sys.executable, str(project / "build.py"), "-e", "-c", "x.json"],
                             cwd=elsewhere, env=env, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and str(elsewhere / "x.json") in missing.stdout + missing.stderr


def test_inherited_project_root_is_used_and_said(tmp_path: Path) -> None:
    """An inherited LOON_PROJECT_ROOT (a wrapper's, the tests') moves build.py to that
    project, never silently: one note on stderr names it and how to undo it."""
    other = tmp_path / "other"
    other.mkdir()
    write_config(other / "config.json", base_config(tmp_path / "data"))
    r = run_build(["-e"], tmp_path, other)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (other / ".build-files" / ".env").is_file()
    notes = [line for line in r.stderr.splitlines() if "LOON_PROJECT_ROOT" in line]
    assert notes == [f"note: LOON_PROJECT_ROOT={other} (from the environment) is the project, "
                     f"not {ROOT}: its config.json, .build-files/ and logs/ are used; unset it "
                     "to use this directory"]
    same = run_build(["-e", "-c", str(other / "config.json")], tmp_path, ROOT)
    assert "LOON_PROJECT_ROOT" not in same.stderr  # naming build.py's own directory: no note
    assert build.project_dir({"LOON_PROJECT_ROOT": str(ROOT)}) == (ROOT, None)
    assert build.project_dir({}) == (ROOT, None)
