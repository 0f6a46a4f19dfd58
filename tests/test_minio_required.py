"""A MinIO that cannot be fetched: built without it (and said), or, with
minioSettings.required, a failed build naming the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from loon_supervisor.config import load_config
from loon_supervisor.errors import BuildFailed
from loon_supervisor.spec.build_inputs import gather
from tests.conftest import base_config, write_config

BASE = ["mysql", "redis", "nginx", "duckdb"]

UNREACHABLE = "http://127.0.0.1:9/minio"  # the discard port: connection refused


def _config(tmp_path: Path, required: bool):  # type: ignore[no-untyped-def]
    data = base_config(tmp_path, minioSourceUrl=UNREACHABLE)
    data["minioSettings"]["required"] = required
    return load_config(write_config(tmp_path / "config.json", data), {})


@pytest.mark.anyio
async def test_unfetchable_minio_builds_without_it(tmp_path: Path, project: Path) -> None:
    said: list[str] = []
    inputs = await gather(_config(tmp_path, False), tmp_path, tmp_path / "cache", BASE, said.append)
    assert "minio" not in inputs.build_args["LOON_SERVICES"].split(",")
    assert any("WITHOUT MinIO" in s and "minioSettings.required" in s for s in said)


@pytest.mark.anyio
async def test_required_minio_fails_the_build(tmp_path: Path, project: Path) -> None:
    with pytest.raises(BuildFailed) as err:
        await gather(_config(tmp_path, True), tmp_path, tmp_path / "cache", BASE,
                     lambda s: None)
    assert "minioSettings.required is true" in str(err.value)
    assert UNREACHABLE in str(err.value)
