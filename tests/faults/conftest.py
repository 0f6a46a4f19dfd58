"""Every fault test runs on both log sources: ``exec`` (a tail exec'd in the container) and
``hostdir`` (the bind-mounted log dir read on this machine), chosen through the config's
``deploymentSettings.logSource`` exactly as an operator would."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.engine_helpers import Deployment, make_deployment
from tests.faults.support import use_log_source

SOURCES = ("exec", "hostdir")


@pytest.fixture(params=SOURCES)
def log_source(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def deploy(tmp_path: Path, engine: None, log_source: str):  # type: ignore[no-untyped-def]
    """tests/conftest.py's ``deploy``, with the log source of this parametrization."""
    made: list[Deployment] = []

    def make(services: dict[str, str], **kw: Any) -> Deployment:
        d = make_deployment(tmp_path, services, **kw)
        use_log_source(d, log_source)
        made.append(d)
        return d
    yield make
    for d in made:
        d.cleanup()
    for d in made:  # the run really used the source it was parametrized with
        out = d.logs / "latest" / "out.log"
        if out.exists():
            said = {"exec": "log source: exec streams", "hostdir": "log source: host directory"}
            assert said[log_source] in out.read_text(errors="replace"), \
                f"{d.name} did not run on the {log_source} log source"
