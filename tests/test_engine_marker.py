"""The engine-free run is only as honest as its markers: the collection refuses a test that
uses the engine fixture without ``@pytest.mark.engine`` (tests/conftest.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from tests.conftest import pytest_collection_modifyitems


@dataclass
class Item:
    nodeid: str
    fixturenames: list[str]
    markers: set[str] = field(default_factory=set)

    def get_closest_marker(self, name: str) -> object | None:
        return name if name in self.markers else None


def test_a_test_using_the_engine_without_the_marker_stops_the_collection() -> None:
    items = [Item("tests/a.py::test_marked", ["engine", "tmp_path"], {"engine"}),
             Item("tests/b.py::test_forgot", ["deploy", "engine"]),
             Item("tests/c.py::test_pure", ["tmp_path"])]
    with pytest.raises(pytest.UsageError, match=r"1 test\(s\).*tests/b.py::test_forgot"):
        pytest_collection_modifyitems(None, items)  # type: ignore[arg-type]


def test_marked_engine_tests_and_engine_free_tests_pass_the_check() -> None:
    items = [Item("tests/a.py::test_marked", ["engine"], {"engine"}),
             Item("tests/c.py::test_pure", ["tmp_path"])]
    pytest_collection_modifyitems(None, items)  # type: ignore[arg-type]
