"""state.update's keyword changes are typed by StateChanges; it must name every field of
DeploymentState that may change, with the same type, so the two cannot drift apart."""

from __future__ import annotations

from dataclasses import fields
from typing import get_type_hints

from loon_supervisor.lifecycle.state import DeploymentState, StateChanges


def test_the_typed_changes_are_the_states_fields_but_its_identity() -> None:
    state = {f.name for f in fields(DeploymentState)}
    assert set(StateChanges.__annotations__) == state - {"name", "cid"}
    hints, changes = get_type_hints(DeploymentState), get_type_hints(StateChanges)
    assert {k: hints[k] for k in changes} == changes
