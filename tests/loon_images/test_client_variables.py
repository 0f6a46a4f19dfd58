"""The client is built for where it is served: the production image built from the stand-in
Loon with its tiny client (docker-common/standin-loon/client-app, copied in as apps/client)
holds config.json's VITE_* values in its bundle. The image is built only (no container, no
host port): the bundle is read back from the built image."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from loon_supervisor.engine.client import open_engine
from loon_supervisor.sinks.reporter import Reporter
from loon_supervisor.spec.prepare import prepare
from loon_supervisor.versions.build import build_version
from tests.loon_images.support import STANDIN, ensure_base_image, image_config

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("engine")]


def read_from_image(tag: str, path: str) -> str:
    result = subprocess.run(["docker", "run", "--rm", "--network", "none", "--entrypoint",
                             "cat", tag, path], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.anyio
async def test_the_client_bundle_holds_the_configured_variables(tmp_path: Path,
                                                                project: Path) -> None:
    ensure_base_image()
    source = tmp_path / "loon-src"
    shutil.copytree(STANDIN, source, ignore=shutil.ignore_patterns("client-app"))
    shutil.copytree(STANDIN / "client-app", source / "apps" / "client")
    name = f"loon-client-{uuid.uuid4().hex[:8]}"
    cfg = image_config(tmp_path / "data", "production", name, https=False)
    cfg["generalSettings"].update(baseUrl="loon.example.org:8443",
                                  experimentVisibilityControl=True)
    cfg["deploymentSettings"].update(loonSourceLocation=str(source),
                                     imageTag=f"loon-ci-client:{name}")
    config = tmp_path / "config.json"
    config.write_text(json.dumps(cfg, indent=2))
    prepared = prepare(config)
    tags: list[str] = []
    try:
        async with open_engine() as engine:
            contract = await build_version(engine, prepared, Reporter(None, None), False, None)
        tags.append(contract.image)
        bundle = read_from_image(contract.image, "/opt/loon/client/assets/index.js")
        assert 'serverUrl: "loon.example.org:8443/data"' in bundle
        assert 'useHttp: "true"' in bundle
        assert 'environment: "production"' in bundle
        assert 'experimentVisibilityControl: "true"' in bundle
        assert "import.meta.env" not in bundle
        assert "Loon stand-in client" in read_from_image(contract.image,
                                                         "/opt/loon/client/index.html")
    finally:
        for tag in tags:
            subprocess.run(["docker", "rmi", tag], capture_output=True)
