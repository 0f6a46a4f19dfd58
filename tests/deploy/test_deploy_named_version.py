"""A deploy request that names the version to deploy (its JSON body's ``image``): checked
against the configured repository before anything is queued, then handed to the step (and
from there to `loon up` as LOON_DEPLOYMENTSETTINGS__IMAGE). No engine: stand-in steps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loon_supervisor.deploy import DeployContext
from loon_supervisor.deploy.runner import run_loon
from tests.conftest import base_config
from tests.deploy.support import call, make_settings, new_token, running_server, wait_terminal

pytestmark = pytest.mark.anyio

REPO = "127.0.0.1:5000/lab/loon"


def _config(tmp_path: Path, **deployment: str) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(base_config(tmp_path / "data", **deployment)))
    return path


async def test_a_named_version_reaches_the_step(tmp_path: Path) -> None:
    seen: list[str | None] = []

    async def step(ctx: DeployContext) -> None:
        seen.append(ctx.image)

    token = new_token()
    settings = make_settings(tmp_path, token,
                             config_file=_config(tmp_path, image=f"{REPO}:v1"))
    async with running_server(settings, step) as srv:
        ans = await call("POST", f"{srv.url}/deploy", token=token,
                         data=json.dumps({"image": "v2"}).encode())
        assert ans.status == 202, ans.text
        assert ans.body["image"] == f"{REPO}:v2"
        done = await wait_terminal(srv.url, ans.body["id"], token)
        assert done["status"] == "succeeded" and done["image"] == f"{REPO}:v2"
        ans = await call("POST", f"{srv.url}/deploy", token=token)  # no body: no version
        assert ans.status == 202, ans.text
        await wait_terminal(srv.url, ans.body["id"], token)
    assert seen == [f"{REPO}:v2", None]


@pytest.mark.parametrize(("deployment", "image", "says"), [
    ({"image": f"{REPO}:v1"}, "docker.io/evil/loon:v2", "not in the allowed repository"),
    ({"image": f"{REPO}:v1"}, "v2 && rm -rf /", "neither a tag nor an image reference"),
    ({"image": f"{REPO}:v1"}, 7, "must be a tag or an image reference"),
    ({}, "v2", "does not accept a version from the webhook"),
])
async def test_a_refused_version_queues_nothing(tmp_path: Path, deployment: dict[str, str],
                                                image: object, says: str) -> None:
    ran: list[str] = []

    async def step(ctx: DeployContext) -> None:
        ran.append(ctx.deploy_id)

    token = new_token()
    settings = make_settings(tmp_path, token, config_file=_config(tmp_path, **deployment))
    async with running_server(settings, step) as srv:
        ans = await call("POST", f"{srv.url}/deploy", token=token,
                         data=json.dumps({"image": image}).encode())
        assert ans.status == 400 and says in ans.body["error"], ans.text
    assert ran == []


async def test_run_loon_hands_the_version_to_the_child(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The child `loon` sees the override: `loon config` prints the effective image."""
    config = _config(tmp_path, image=f"{REPO}:v1")
    monkeypatch.setenv("LOON_PROJECT_ROOT", str(tmp_path))
    lines: list[str] = []
    ctx = DeployContext(deploy_id="x", log_dir=tmp_path, config_file=config,
                        repo_dir=tmp_path, git_branch=None, log=lines.append)
    rc = await run_loon(ctx, "config", "-c", str(config),
                        env={"LOON_DEPLOYMENTSETTINGS__IMAGE": f"{REPO}:v9"})
    assert rc == 0, lines
    text = "\n".join(lines)
    assert f'"image": "{REPO}:v9"' in text, text
    assert f"LOON_DEPLOYMENTSETTINGS__IMAGE={REPO}:v9 loon config" in text
