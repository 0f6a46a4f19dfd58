"""Version tags, labels and the versions store, without an engine."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from loon_supervisor import versions
from loon_supervisor.config.formats import check_image_reference
from loon_supervisor.versions import store
from loon_supervisor.versions.naming import (
    project_id,
    source_revision,
    split_reference,
    version_tag,
)

WHEN = datetime(2026, 12, 4, 15, 1, 2, tzinfo=UTC)


@pytest.mark.parametrize(("image_tag", "expected"), [
    ("loon:latest", "loon:latest-20261204T150102Z-1a2b3c4"),
    ("loon", "loon:latest-20261204T150102Z-1a2b3c4"),
    ("127.0.0.1:5000/lab/loon:v1.2", "127.0.0.1:5000/lab/loon:v1.2-20261204T150102Z-1a2b3c4"),
    ("localhost:5000/loon", "localhost:5000/loon:latest-20261204T150102Z-1a2b3c4"),
])
def test_version_tag_keeps_the_repository(image_tag: str, expected: str) -> None:
    tag = version_tag(image_tag, WHEN, "1a2b3c4d5e6f")
    assert tag == expected
    check_image_reference(tag)


def test_version_tag_without_revision_and_with_a_long_tag() -> None:
    assert version_tag("loon:prod", WHEN, None) == "loon:prod-20261204T150102Z"
    long = version_tag("loon:" + "x" * 128, WHEN, "abcdef1234")
    assert len(long.split(":", 1)[1]) == 128 and long.endswith("-20261204T150102Z-abcdef1")
    check_image_reference(long)


def test_split_reference() -> None:
    assert split_reference("a/b:c") == ("a/b", "c")
    assert split_reference("host:5000/b") == ("host:5000/b", "latest")
    assert split_reference("b@sha256:" + "0" * 64) == ("b", "latest")


def test_project_id_differs_per_clone_and_name(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert project_id(a, "loon") != project_id(b, "loon")
    assert project_id(a, "loon") != project_id(a, "other")
    assert project_id(a, "loon").startswith("loon@")


def test_source_revision_of_a_checkout(tmp_path: Path) -> None:
    assert source_revision(tmp_path) is None  # not a checkout
    assert source_revision(None) is None
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "f").write_text("1")
    subprocess.run([*git, "add", "f"], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert source_revision(tmp_path) == head
    (tmp_path / "f").write_text("2")
    assert source_revision(tmp_path) == head + "-dirty"


def test_store_records_outcomes_and_previous(project: Path) -> None:
    assert versions.current("d") is None and versions.previous("d") is None
    for i, tag in enumerate(["loon:a", "loon:b", "loon:c"]):
        versions.record("d", versions.Version(tag=tag, built=f"2026-01-0{i + 1}T00:00:00Z"))
    versions.mark_deployed("d", "loon:a", downtime=1.5)
    versions.mark_deployed("d", "loon:b", downtime=2.0)
    current = versions.current("d")
    assert current is not None and current.tag == "loon:b" and current.downtime == 2.0
    prev = versions.previous("d")
    assert prev is not None and prev.tag == "loon:a"
    versions.mark_deployed("d", "loon:c")
    versions.record_outcome("d", "loon:c", versions.FAILED, "server answered 502")
    versions.set_current("d", "loon:b")  # what a rollback does
    prev = versions.previous("d")
    assert prev is not None and prev.tag == "loon:a"  # c failed: never a rollback target
    data = json.loads((project / ".build-files" / "versions.d.json").read_text())
    assert data["current"] == "loon:b"
    assert [v["outcome"] for v in data["versions"]] == ["deployed", "deployed", "failed"]
    assert data["versions"][2]["reason"] == "server answered 502"
    versions.record_outcome("d", "loon:gone", versions.FAILED)  # a pruned tag: ignored
    store.forget("d", {"loon:b"})
    assert versions.current("d") is None
    assert [v.tag for v in versions.versions("d")] == ["loon:a", "loon:c"]


def test_an_unreadable_store_reads_as_empty(project: Path) -> None:
    path = project / ".build-files" / "versions.d.json"
    path.parent.mkdir()
    path.write_text("{not json")
    assert versions.versions("d") == [] and versions.current("d") is None
    versions.record("d", versions.Version(tag="loon:a", built="2026-01-01T00:00:00Z"))
    assert [v.tag for v in versions.versions("d")] == ["loon:a"]


@pytest.mark.parametrize(("settings", "requested", "expected"), [
    ({"image": "127.0.0.1:5000/lab/loon:v1.7"}, "v1.8", "127.0.0.1:5000/lab/loon:v1.8"),
    ({"image": "127.0.0.1:5000/lab/loon:v1.7"}, "127.0.0.1:5000/lab/loon:v1.9",
     "127.0.0.1:5000/lab/loon:v1.9"),
    ({"webhookRepository": "ghcr.io/lab/loon"}, " v2.0 ", "ghcr.io/lab/loon:v2.0"),
    ({"image": "a/b:1", "webhookRepository": "ghcr.io/lab/loon"}, "ghcr.io/lab/loon:x",
     "ghcr.io/lab/loon:x"),
])
def test_webhook_version_within_the_repository(settings: dict[str, str], requested: str,
                                               expected: str) -> None:
    from loon_supervisor.config.model import DeploymentSettings
    from loon_supervisor.versions.reference import webhook_version

    assert webhook_version(requested, DeploymentSettings(**settings)) == expected


@pytest.mark.parametrize(("settings", "requested", "says"), [
    ({}, "v1", "does not accept a version from the webhook"),
    ({"image": "ghcr.io/lab/loon:v1"}, "ghcr.io/evil/loon:v1", "not in the allowed repository"),
    ({"image": "ghcr.io/lab/loon:v1"}, "ghcr.io/lab/loon-x:v1", "not in the allowed repository"),
    ({"image": "ghcr.io/lab/loon:v1"}, "v1; rm -rf /", "neither a tag nor an image reference"),
    ({"image": "ghcr.io/lab/loon:v1"}, "ghcr.io/lab/loon", "names no tag"),
    ({"image": "ghcr.io/lab/loon:v1"}, "ghcr.io/lab/loon@sha256:" + "a" * 64, "digest"),
    ({"image": "ghcr.io/lab/loon:v1"}, "../../etc", "neither a tag"),
])
def test_webhook_version_refusals(settings: dict[str, str], requested: str, says: str) -> None:
    from loon_supervisor.config.model import DeploymentSettings
    from loon_supervisor.versions.reference import NotAllowed, webhook_version

    with pytest.raises(NotAllowed, match=re.escape(says)):
        webhook_version(requested, DeploymentSettings(**settings))


def test_requested_version_reads_the_config(project: Path, tmp_path: Path) -> None:
    from loon_supervisor.versions.reference import NotAllowed, requested_version
    from tests.conftest import base_config

    config = tmp_path / "config.json"
    config.write_text(json.dumps(base_config(tmp_path / "data",
                                             image="127.0.0.1:5000/lab/loon:v1")))
    assert requested_version({}, config) is None
    assert requested_version({"image": "v2"}, config) == "127.0.0.1:5000/lab/loon:v2"
    with pytest.raises(NotAllowed, match="must be a tag"):
        requested_version({"image": 3}, config)
    with pytest.raises(NotAllowed, match="not in the allowed repository"):
        requested_version({"image": "docker.io/x/y:1"}, config)
    config.write_text("{")
    with pytest.raises(NotAllowed, match="configuration cannot be read"):
        requested_version({"image": "v2"}, config)
