"""Run-time service selection: `loon up --only` runs and follows exactly the named services
of the image (org.loon.run-services-env), with a real engine and a busybox image."""

from __future__ import annotations

import subprocess
import sys

import pytest

from loon_supervisor.engine.images import ImageContract
from loon_supervisor.errors import ImageContractError
from loon_supervisor.sinks.reporter import Reporter
from loon_supervisor.verbs.up import select_services
from tests.engine_helpers import Deployment, container_files, wait_until
from tests.test_detached import writer

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("engine")]


def contract(env: str | None = "LOON_RUN_SERVICES") -> ImageContract:
    return ImageContract("img", ("mysql", "redis", "nginx"), "/var/log/loon", None, env)


def test_select_services_keeps_the_image_order_and_reports_missing() -> None:
    reporter = Reporter(None, None)
    chosen = select_services(contract(), ("redis", "minio", "mysql"), Reporter(None, None))
    assert chosen.services == ("mysql", "redis")
    assert select_services(contract(), None, reporter).services == ("mysql", "redis", "nginx")


def test_select_services_needs_the_label() -> None:
    with pytest.raises(ImageContractError, match="org.loon.run-services-env"):
        select_services(contract(None), ("mysql",), Reporter(None, None))
    with pytest.raises(ImageContractError, match="holds none of"):
        select_services(contract(), ("minio",), Reporter(None, None))


def test_up_only_runs_and_follows_exactly_those(deploy) -> None:  # type: ignore[no-untyped-def]
    d: Deployment = deploy({"alpha": writer("alpha", 200), "beta": writer("beta", 200),
                            "gamma": writer("gamma", 200)})
    up = subprocess.run([sys.executable, "-m", "loon_supervisor", "up", "-d", "--only",
                         "gamma,alpha", "--config-file", str(d.config)], cwd=d.root,
                        env=d.env(), capture_output=True, text=True, timeout=180)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        session = d.session()
        wait_until(lambda: all((session / f"{s}.log").exists() and
                               (session / f"{s}.log").read_bytes().endswith(f"{s} 200\n".encode())
                               for s in ("alpha", "gamma")), timeout=60)
        inside = container_files(d.name)
        assert set(inside) == {"alpha.log", "gamma.log"}, "beta must not run"
        assert not (session / "beta.log").exists()
        assert "following 2 services: alpha, gamma" in (session / "out.log").read_text()
    finally:
        down = d.run("-D")
    assert down.returncode == 0, down.stdout + down.stderr
