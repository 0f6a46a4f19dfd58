"""A logger that re-attaches without a state file keeps the crash-loop rule the container
was started with: up writes it as a container label, attach reads it back (issue 27: attach
built the state a second way and dropped crash_loop)."""

from __future__ import annotations

from pathlib import Path

import pytest

from loon_supervisor.engine.containers import CRASH_LOOP_LABEL, crash_loop_label, parse_crash_loop
from loon_supervisor.lifecycle.unrecorded import crash_loop_of
from tests.conftest import base_config, write_config


def test_the_label_round_trips_the_rule() -> None:
    assert parse_crash_loop(crash_loop_label(5, 120.0)) == (5, 120.0)
    assert parse_crash_loop(crash_loop_label(3, 0.5)) == (3, 0.5)


@pytest.mark.parametrize("value", [None, "", "3", "a,b", "0,10", "3,0", "3,-1", "1,2,3"])
def test_a_missing_or_foreign_label_is_no_rule(value: str | None) -> None:
    assert parse_crash_loop(value) is None


def test_attach_takes_the_containers_rule_else_the_default() -> None:
    assert crash_loop_of({CRASH_LOOP_LABEL: "7,60"}) == (7, 60.0)
    assert crash_loop_of({}) == (3, 300.0)  # deploymentSettings' defaults
    assert crash_loop_of({CRASH_LOOP_LABEL: "junk"}) == (3, 300.0)


def test_the_container_carries_the_configs_rule(tmp_path: Path, project: Path) -> None:
    from loon_supervisor.engine.images import ImageContract
    from loon_supervisor.spec.loon import container_spec
    from loon_supervisor.spec.prepare import prepare

    data = base_config(tmp_path, crashLoopRestarts=6, crashLoopWindow=45)
    prepared = prepare(write_config(tmp_path / "c.json", data), create_dirs=False)
    contract = ImageContract(image="loon:test", services=("server",),
                             log_dir="/var/log/loon", status_command=None)
    spec = container_spec(prepared, contract, False)
    assert crash_loop_of(spec.labels) == (6, 45.0)
