"""A new operator's first contact, with real containers: the installed `loon` acting on the
clone it runs in, compose-like recreate of a stopped container, and one deployment name
for every verb under an environment override."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import anyio
import pytest

from tests.conftest import ROOT, base_config
from tests.engine_helpers import (
    Deployment,
    container_files,
    containers_named,
    remove_containers,
    stop_with,
    wait_until,
)
from tests.images import write_context
from tests.test_up_flow import ticker

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("engine")]


def clean_env(**extra: str) -> dict[str, str]:
    """The operator's environment: no LOON_* variables, no project pinned."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOON_")}
    env["COLUMNS"] = "400"  # paths in status tables stay on one line
    env.update(extra)
    return env


def make_clone(tmp_path: Path, label: str) -> tuple[Path, str]:
    """A fresh clone with its own config.json (a tiny image, a unique deployment name)."""
    clone = tmp_path / label
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    name = f"loon-test-{uuid.uuid4().hex[:8]}"
    ctx = write_context(tmp_path / f"image-{label}", {"alpha": ticker("alpha")})
    config = base_config(tmp_path / f"data-{label}", containerName=name,
                         imageTag=f"loon-test:{name}", imageDirectory=str(ctx),
                         networkMode="none", buildNetworkMode="host", minioSourceUrl=None,
                         stopTimeout=3)
    (clone / "config.json").write_text(json.dumps(config, indent=2))
    return clone, name


def cleanup(name: str) -> None:
    subprocess.run(["pkill", "-9", "-f", f"_logger {name}$"], check=False)
    anyio.run(remove_containers, name, backend="asyncio")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`loon` from a non-editable install into a fresh venv (as build.py's own venv is)."""
    venv = tmp_path_factory.mktemp("venv")
    source = tmp_path_factory.mktemp("source") / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(source)], check=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    result = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(source)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "site-packages" in subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import loon_supervisor; "
         "print(loon_supervisor.__file__)"], cwd=venv, capture_output=True, text=True).stdout
    return venv / "bin" / "loon"


def loon(exe: Path, cwd: Path, *args: str, timeout: float = 120,
         **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(exe), *args], cwd=cwd, env=clean_env(**env),
                          capture_output=True, text=True, timeout=timeout)


def state_of(clone: Path, name: str) -> dict:
    return json.loads((clone / ".build-files" / f"state.{name}.json").read_text())


def test_installed_loon_acts_on_the_clone_it_runs_in(installed: Path, tmp_path: Path) -> None:
    (a, name_a), (b, name_b) = make_clone(tmp_path, "a"), make_clone(tmp_path, "b")
    (b / "docs").mkdir(exist_ok=True)
    try:
        for clone, cwd, name in ((a, a, name_a), (b, b / "docs", name_b)):
            r = loon(installed, cwd, "validate")
            assert r.returncode == 0, r.stdout + r.stderr
            assert (clone / ".build-files" / ".env").exists()
            r = loon(installed, cwd, "up", "-d")
            assert r.returncode == 0, r.stdout + r.stderr
            assert str(clone / "logs") in r.stdout
            assert state_of(clone, name)["session"].startswith(str(clone / "logs"))
        for clone, cwd, name in ((a, a, name_a), (b, b / "docs", name_b)):
            session = state_of(clone, name)["session"]
            r = loon(installed, cwd, "status")
            assert r.returncode == 0, r.stdout + r.stderr
            assert name in r.stdout and session in r.stdout and "alive (pid" in r.stdout
            wait_until(lambda s=session: Path(s, "alpha.log").stat().st_size > 200, timeout=20)
            r = loon(installed, cwd, "logs", "-n", "5")
            assert r.returncode == 0, r.stdout + r.stderr
            alpha = [line for line in r.stdout.splitlines() if line.startswith("alpha ")]
            assert len(alpha) == 5, r.stdout
            # The logger dies; attach resumes it into the same clone's session.
            os.kill(state_of(clone, name)["logger_pid"], signal.SIGKILL)
            r = loon(installed, cwd, "attach")
            assert r.returncode == 0, r.stdout + r.stderr
            assert f"into {session}" in r.stdout
        assert not (a / ".build-files" / f"state.{name_b}.json").exists()
        assert not (b / ".build-files" / f"state.{name_a}.json").exists()
        for clone, cwd, name in ((a, a, name_a), (b, b / "docs", name_b)):
            r = loon(installed, cwd, "down")
            assert r.returncode == 0, r.stdout + r.stderr
            assert f"logs complete in {clone / 'logs'}" in r.stdout
            assert containers_named(name) == []
        outside = tmp_path / "elsewhere"
        outside.mkdir()
        r = loon(installed, outside, "status")
        assert r.returncode == 2 and r.stdout == ""
        assert len(r.stderr.strip().splitlines()) == 1 and "--project-dir" in r.stderr, r.stderr
        r = loon(installed, outside, "--project-dir", str(a), "status")
        assert r.returncode == 3 and name_a in r.stdout, r.stdout + r.stderr
    finally:
        cleanup(name_a)
        cleanup(name_b)


def test_up_recreates_a_stopped_container_and_collects_its_last_bytes(deploy) -> None:  # type: ignore[no-untyped-def]
    d: Deployment = deploy({"alpha": ticker("alpha")})
    r = d.run("-d")
    assert r.returncode == 0, r.stdout + r.stderr
    st = json.loads((d.project / ".build-files" / f"state.{d.name}.json").read_text())
    old = Path(st["session"])
    os.kill(st["logger_pid"], signal.SIGKILL)  # nothing copies the files any more
    size = (old / "alpha.log").stat().st_size
    wait_until(lambda: container_files(d.name)["alpha.log"].__len__() > size + 200, timeout=20)
    subprocess.run(["docker", "kill", "--signal", "KILL", d.name], check=True,
                   capture_output=True)
    wait_until(lambda: containers_named(d.name)[0]["State"] == "exited", timeout=30)
    inside = container_files(d.name)["alpha.log"]

    proc = d.start()
    wait_until(lambda: d.session() != old and "Loon is up" in (d.session() / "out.log")
               .read_text(), timeout=120)
    code, said = stop_with(proc, signal.SIGINT)
    assert code == 130, said
    assert f"recreating container {d.name}: the previous one" in said
    new_out = (d.session() / "out.log").read_text()
    assert f"recreating container {d.name}" in new_out
    assert "build progress: step 1/" in new_out and "build progress: done in" in new_out
    assert (old / "alpha.log").read_bytes() == inside, "missing bytes were not collected"
    assert "collected" in (old / "out.log").read_text()
    assert containers_named(d.name) == []


def test_a_running_container_still_refuses(deploy) -> None:  # type: ignore[no-untyped-def]
    d: Deployment = deploy({"alpha": ticker("alpha")})
    assert d.run("-d").returncode == 0
    r = d.run()
    assert r.returncode == 1
    said = r.stdout + r.stderr
    assert f"deployment '{d.name}' already exists" in said and "build.py -D" in said, said
    assert "recreating" not in said
    assert d.run("-D").returncode == 0


def test_env_override_names_the_deployment_for_every_verb(deploy) -> None:  # type: ignore[no-untyped-def]
    d: Deployment = deploy({"alpha": ticker("alpha")})
    prod = f"prod-loon-{uuid.uuid4().hex[:6]}"  # unique on the shared engine
    override = {"LOON_DEPLOYMENTSETTINGS__CONTAINERNAME": prod}
    try:
        r = d.run("-d", **override)
        assert r.returncode == 0, r.stdout + r.stderr
        assert containers_named(prod) and containers_named(d.name) == []
        status = subprocess.run([sys.executable, "-m", "loon_supervisor", "status",
                                 "--config-file", str(d.config)], cwd=d.root,
                                env=d.env(**override), capture_output=True, text=True,
                                timeout=60)
        assert status.returncode == 0, status.stdout + status.stderr
        assert prod in status.stdout
        plain = d.loon("status", "--config-file", str(d.config))
        assert plain.returncode == 3 and d.name in plain.stdout
        r = d.run("-D", **override)
        assert r.returncode == 0, r.stdout + r.stderr
        assert f"{d.project / 'logs'}" in r.stdout and "logs complete" in r.stdout, r.stdout
        assert containers_named(prod) == []
    finally:
        cleanup(prod)


def test_foreground_run_is_visible_to_status_and_logs(deploy) -> None:  # type: ignore[no-untyped-def]
    d: Deployment = deploy({"alpha": ticker("alpha")})
    proc = d.start()
    d.wait_out_log("Loon is up", timeout=120)
    session = d.session()
    status = subprocess.run([sys.executable, "-m", "loon_supervisor", "status", "--config-file",
                             str(d.config)], cwd=d.root, env=d.env(COLUMNS="400"),
                            capture_output=True, text=True, timeout=60)
    assert status.returncode in (0, 1), status.stdout + status.stderr
    assert f"foreground pid {proc.pid}" in status.stdout and str(session) in status.stdout
    code, said = stop_with(proc, signal.SIGINT)
    assert code == 130, said
    assert not (d.project / ".build-files" / f"state.{d.name}.json").exists()

    # A run stopped before it followed anything leaves a session with only out.log.
    failed = d.start(LOON_TEST_DELAY_STARTING="60")
    wait_until(lambda: d.session() != session and "built loon-test" in
               (d.session() / "out.log").read_text(), timeout=120)
    empty = d.session()
    assert stop_with(failed, signal.SIGINT)[0] == 130
    logs = d.loon("logs", "-n", "2", "--config-file", str(d.config))
    assert logs.returncode == 0, logs.stdout + logs.stderr
    assert f"the newest session {empty.name} has no service logs" in logs.stderr
    assert "bye alpha" in logs.stdout
