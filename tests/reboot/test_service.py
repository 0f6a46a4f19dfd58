"""`loon service`: the unit it writes (checked by systemd-analyze), and its follower
(`loon attach --wait`) carrying a deployment through a reboot: the followers get SIGTERM
and detach, the engine stops (without live-restore its containers stop with it) and starts
again, the restart policy runs the container and the follower started at boot continues
the same session files, nothing lost or doubled (issue 31)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import base_config
from tests.engine_helpers import Deployment, PrivateEngine, wait_until
from tests.reboot.support import (
    check_continued,
    deploy_on,
    kill_followers,
    loon,
    private_engine,
    restart_engine,
    running,
)
from tests.test_detached import alive


def service(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOON_", "DOCKER_"))}
    return subprocess.run([sys.executable, "-m", "loon_supervisor", "--project-dir",
                           str(project), "service", *args], env=env, capture_output=True,
                          text=True, timeout=60)


def systemd_analyze() -> str:
    """systemd-analyze, installed from Debian's systemd package when apt can."""
    found = shutil.which("systemd-analyze")
    if found is None and shutil.which("apt-get") and os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "systemd"],
                       capture_output=True, env={**os.environ,
                                                 "DEBIAN_FRONTEND": "noninteractive"})
        found = shutil.which("systemd-analyze")
    if found is None:
        pytest.skip("systemd-analyze is not installed and apt cannot install systemd here")
    return found


@pytest.mark.parametrize("odd", ["plain", "with space and 100%"])
def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path, odd: str) -> None:
    project = tmp_path / ("project" if odd == "plain" else f"my {odd}")
    project.mkdir()
    (project / "config.json").write_text(json.dumps(base_config(tmp_path)))
    units = tmp_path / "units"
    r = service(project, "install", "--name", "prod-loon", "--unit-dir", str(units))
    assert r.returncode == 0, r.stdout + r.stderr
    unit = units / "loon-prod-loon.service"
    text = unit.read_text()
    assert "Restart=always" in text and "WantedBy=multi-user.target" in text
    assert "attach --name prod-loon --wait" in text
    assert "systemctl enable --now loon-prod-loon.service" in r.stdout
    verify = subprocess.run([systemd_analyze(), "verify", str(unit)], capture_output=True,
                            text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "Unknown" not in verify.stderr and "Failed" not in verify.stderr, verify.stderr
    r = service(project, "print", "--name", "prod-loon")
    assert r.returncode == 0 and r.stdout == text
    r = service(project, "uninstall", "--name", "prod-loon", "--unit-dir", str(units))
    assert r.returncode == 0 and not unit.exists()
    r = service(project, "remove", "--name", "prod-loon")
    assert r.returncode == 2 and "install, uninstall or print" in r.stderr


def test_install_without_systemd_says_how(tmp_path: Path) -> None:
    """This machine runs no systemd: the default install writes the unit and says how to
    start the same follower at boot without it."""
    if Path("/run/systemd/system").is_dir():
        pytest.skip("systemd runs here: install would enable the unit")
    project = tmp_path / "project"
    project.mkdir()
    (project / "config.json").write_text(json.dumps(base_config(tmp_path)))
    name = f"i31-{os.getpid()}"
    try:
        r = service(project, "install", "--name", name)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "systemd is not running" in r.stdout and "@reboot" in r.stdout
        assert f"attach --name {name} --wait" in r.stdout
    finally:
        r = service(project, "uninstall", "--name", name)
        assert r.returncode == 0 and not Path(f"/etc/systemd/system/loon-{name}.service").exists()


def follower(d: Deployment, engine: PrivateEngine) -> subprocess.Popen[str]:
    """What the unit runs: `loon attach --wait` for this deployment."""
    log = open(d.root / "service.out", "a")  # noqa: SIM115 - the child's output
    try:
        return subprocess.Popen([sys.executable, "-m", "loon_supervisor", "attach", "--name",
                                 d.name, "--wait"], cwd=d.root,
                                env=d.env(DOCKER_HOST=engine.host), stdout=log,
                                stderr=subprocess.STDOUT, text=True)
    finally:
        log.close()


def lock_pid(d: Deployment) -> int | None:
    from tests.faults.support import lock_holder

    return lock_holder(d)


@pytest.mark.engine
@pytest.mark.usefixtures("engine")
def test_a_reboot_with_the_service_follower(tmp_path: Path) -> None:
    engine = private_engine()
    d = deploy_on(tmp_path, engine, "exec")
    procs: list[subprocess.Popen[str]] = []
    try:
        engine.start()
        result = d.run("-d", timeout=180, DOCKER_HOST=engine.host)
        assert result.returncode == 0, result.stdout + result.stderr
        state_file = d.project / ".build-files" / f"state.{d.name}.json"
        logger = json.loads(state_file.read_text())["logger_pid"]
        waiting = follower(d, engine)  # the unit, started while up -d's logger follows
        procs.append(waiting)
        wait_until(lambda: len((d.session() / "c.log").read_text().splitlines()) > 20)
        assert lock_pid(d) == logger and waiting.poll() is None
        # Shutdown: every process gets SIGTERM; neither follower stops the deployment.
        os.kill(logger, signal.SIGTERM)
        wait_until(lambda: not alive(logger), timeout=30)
        wait_until(lambda: lock_pid(d) == waiting.pid, timeout=30)  # it takes over
        wait_until(lambda: f"follower {waiting.pid} attached to every stream"
                   in (d.session() / "out.log").read_text(), timeout=30)
        waiting.send_signal(signal.SIGTERM)
        assert waiting.wait(timeout=30) == 0
        assert running(d, engine), "a follower's SIGTERM stopped the container"
        out = (d.session() / "out.log").read_text()
        assert f"background logger {logger} detached" in out
        assert f"follower {waiting.pid} detached" in out

        boot: list[subprocess.Popen[str]] = []

        def start_at_boot() -> None:  # the unit starts with the machine, before the engine
            boot.append(follower(d, engine))
            procs.append(boot[0])

        took = restart_engine(d, engine, between=start_at_boot)
        print(f"reboot: engine answers after {took.engine:.2f}s, Loon runs after "
              f"{took.running:.2f}s, logs flow after {took.logging:.2f}s")
        wait_until(lambda: lock_pid(d) == boot[0].pid, timeout=30)
        status = loon(d, engine, "status")
        assert f"alive (pid {boot[0].pid})" in status.stdout, status.stdout
        out = (d.session() / "out.log").read_text()
        assert "exited on its own" not in out and "FAILED" not in out
        check_continued(d, engine)  # status 0, every line once, down removes it
        assert boot[0].poll() is None  # down stopped the deployment; the unit waits on
        boot[0].send_signal(signal.SIGTERM)
        assert boot[0].wait(timeout=30) == 0
        said = (d.root / "service.out").read_text()
        assert "Traceback" not in said, said
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        kill_followers(d)
        engine.destroy()
