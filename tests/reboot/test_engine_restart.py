"""Loon survives an engine restart without live-restore, which stops its containers as a
reboot does: the restart policy runs the container again and the background logger
continues the same session files with nothing lost (issue 31)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.engine_helpers import wait_until
from tests.reboot.support import (
    check_continued,
    deploy_on,
    kill_followers,
    loon,
    private_engine,
    restart_engine,
)

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("engine")]


@pytest.mark.parametrize("log_source", ["exec", "hostdir"])
def test_the_background_logger_follows_loon_through_an_engine_restart(
        tmp_path: Path, log_source: str) -> None:
    engine = private_engine()
    d = deploy_on(tmp_path, engine, log_source)
    try:
        engine.start()
        result = d.run("-d", timeout=180, DOCKER_HOST=engine.host)
        assert result.returncode == 0, result.stdout + result.stderr
        took = restart_engine(d, engine)
        print(f"engine answers after {took.engine:.2f}s, Loon runs after {took.running:.2f}s, "
              f"logs flow after {took.logging:.2f}s")
        wait_until(lambda: "the container runs again (restarted with the Docker engine)"
                   in (d.session() / "out.log").read_text(), timeout=60)
        out = (d.session() / "out.log").read_text()
        assert "exited on its own" not in out and "FAILED" not in out
        check_continued(d, engine)
        assert "background logger exiting: stopped on request" in (
            d.session() / "out.log").read_text()
    finally:
        kill_followers(d)
        engine.destroy()


def test_down_still_means_down_with_the_restart_policy(tmp_path: Path) -> None:
    """`loon down`, then an engine restart: nothing of the deployment comes back."""
    engine = private_engine()
    d = deploy_on(tmp_path, engine, "hostdir")
    try:
        engine.start()
        result = d.run("-d", timeout=180, DOCKER_HOST=engine.host)
        assert result.returncode == 0, result.stdout + result.stderr
        policy = subprocess_out(["docker", "-H", engine.host, "inspect", "-f",
                                 "{{.HostConfig.RestartPolicy.Name}}", d.name])
        assert policy == "unless-stopped"
        assert loon(d, engine, "down").returncode == 0
        engine.stop()
        engine.start()
        assert subprocess_out(["docker", "-H", engine.host, "ps", "-aq"]) == ""
        status = loon(d, engine, "status")
        assert status.returncode == 3, status.stdout
    finally:
        kill_followers(d)
        engine.destroy()


def subprocess_out(cmd: list[str]) -> str:
    import subprocess

    return subprocess.run(cmd, capture_output=True, text=True).stdout.strip()
