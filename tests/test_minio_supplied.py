"""MinIO for hosts that cannot download it: a binary the operator supplies as a local file
(deploymentSettings.minioBinary), verified by its SHA-256 (minioSha256) before it goes into
an image; with minioSha256 a download and the cached copy are verified too."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from aiohttp import web

from loon_supervisor.config import load_config
from loon_supervisor.errors import BuildFailed, ConfigError
from loon_supervisor.spec.build_inputs import gather
from tests.conftest import base_config, write_config

BASE = ["mysql", "redis", "nginx", "duckdb"]
BINARY = b"#!/bin/sh\necho a stand-in for the MinIO server binary\n"
SHA = hashlib.sha256(BINARY).hexdigest()
UNREACHABLE = "http://127.0.0.1:9/minio"  # never asked when a binary is supplied


def _config(tmp_path: Path, **deployment: object):  # type: ignore[no-untyped-def]
    data = base_config(tmp_path, **{"minioSourceUrl": UNREACHABLE, **deployment})
    return load_config(write_config(tmp_path / "config.json", data), {})


@pytest.mark.anyio
async def test_a_supplied_binary_with_its_checksum_goes_into_the_image(
        tmp_path: Path, project: Path) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "minio").write_bytes(BINARY)
    said: list[str] = []
    cfg = _config(tmp_path, minioBinary="bin/minio", minioSha256=SHA)  # relative: config's dir
    inputs = await gather(cfg, tmp_path, tmp_path / "cache", BASE, said.append)
    assert inputs.extra_files["loon-build/minio"] == tmp_path / "bin" / "minio"
    assert inputs.build_args["LOON_SERVICES"].split(",")[:5] == [*BASE, "minio"]
    assert any("supplied binary bin/minio" in s for s in said), said
    assert not (tmp_path / "cache" / "minio").exists()  # nothing downloaded


@pytest.mark.anyio
async def test_a_supplied_binary_that_does_not_match_fails_the_build(
        tmp_path: Path, project: Path) -> None:
    binary = tmp_path / "minio"
    binary.write_bytes(BINARY)
    cfg = _config(tmp_path, minioBinary=str(binary), minioSha256=SHA)
    binary.write_bytes(BINARY + b"# changed after the config was checked\n")
    with pytest.raises(BuildFailed) as err:
        await gather(cfg, tmp_path, tmp_path / "cache", BASE, lambda s: None)
    text = str(err.value)
    assert f"not minioSha256 {SHA}" in text and str(binary) in text
    assert hashlib.sha256(binary.read_bytes()).hexdigest() in text


def test_the_config_names_a_missing_binary_or_checksum(tmp_path: Path, project: Path) -> None:
    with pytest.raises(ConfigError) as err:
        _config(tmp_path, minioBinary=str(tmp_path / "nothing"), minioSha256=SHA)
    assert "deploymentSettings.minioBinary" in str(err.value)
    assert "does not exist or is not a file" in str(err.value)
    (tmp_path / "minio").write_bytes(BINARY)
    with pytest.raises(ConfigError) as err:
        _config(tmp_path, minioBinary=str(tmp_path / "minio"))
    assert "without deploymentSettings.minioSha256" in str(err.value)
    with pytest.raises(ConfigError) as err:
        _config(tmp_path, minioBinary=str(tmp_path / "minio"), minioSha256="ABC")
    assert "minioSha256" in str(err.value)


async def _serve(body: bytes) -> tuple[web.AppRunner, str]:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body)
    app = web.Application()
    app.router.add_get("/minio", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}/minio"


@pytest.mark.anyio
async def test_a_download_and_its_cached_copy_are_checked_against_minio_sha256(
        tmp_path: Path, project: Path) -> None:
    runner, url = await _serve(BINARY)
    try:
        cache = tmp_path / "cache"
        cache.mkdir()
        (cache / "minio").write_bytes(b"an older MinIO")  # cached copy, another version
        said: list[str] = []
        cfg = _config(tmp_path, minioSourceUrl=url, minioSha256=SHA)
        inputs = await gather(cfg, tmp_path, cache, BASE, said.append)
        assert (cache / "minio").read_bytes() == BINARY
        assert inputs.extra_files["loon-build/minio"] == cache / "minio"
        assert any("does not match minioSha256: fetching it again" in s for s in said)
        wrong = "0" * 64
        (cache / "minio").unlink()
        with pytest.raises(BuildFailed) as err:
            await gather(_config(tmp_path, minioSourceUrl=url, minioSha256=wrong), tmp_path,
                         cache, BASE, lambda s: None)
        assert f"has SHA-256 {SHA}, not minioSha256 {wrong}" in str(err.value)
        assert not (cache / "minio").exists() and not (cache / "minio.part").exists()
    finally:
        await runner.cleanup()
