"""Actions from the dashboard: confirmed, CSRF-protected, recorded in out.log with who."""

from __future__ import annotations

import re
from pathlib import Path

import anyio
import pytest

from loon_supervisor.deploy import DeployContext
from loon_supervisor.sinks.session import new_session_dir
from tests.dashboard.support import (
    browser,
    csrf_of,
    dash_settings,
    new_secret,
    serving,
    sign_in,
)

pytestmark = pytest.mark.anyio


async def phased_step(ctx: DeployContext) -> None:
    for phase in ("build", "start", "health"):
        ctx.set_phase(phase)
        await anyio.sleep(0.2)


async def slow_step(ctx: DeployContext) -> None:
    ctx.set_phase("build")
    await anyio.sleep(3600)


async def wait_status(client, url: str, want: str) -> str:  # type: ignore[no-untyped-def]
    with anyio.fail_after(30):
        while True:
            async with client.get(url) as r:
                text = await r.text()
            m = re.search(r'id="deploy-status"[^>]*>([^<]*)<', text)
            if m and m.group(1) == want:
                return text
            await anyio.sleep(0.2)


async def test_a_redeploy_from_the_page_shows_its_phases_and_is_recorded(
        project: Path, tmp_path: Path) -> None:
    session = new_session_dir(project / "logs")
    password = new_secret()
    settings = dash_settings(tmp_path, password=password, token=new_secret())
    async with serving(settings, phased_step) as s, browser() as client:
        await sign_in(client, s.url, password, name="ada")
        csrf = await csrf_of(client, f"{s.url}/dashboard/confirm/redeploy")
        async with client.post(f"{s.url}/dashboard/actions/redeploy", data={"csrf": csrf},
                               allow_redirects=False) as r:
            assert r.status == 303
            where = r.headers["Location"]
        assert re.fullmatch(r"/dashboard/deploys/\d{8}T\d{6}Z-[0-9a-f]{8}", where)
        text = await wait_status(client, s.url + where, "succeeded")
        assert "build → start → health" in text
        async with client.get(f"{s.url}/dashboard/deploys") as r:
            assert where.rsplit("/", 1)[1] in await r.text()
    out = (session / "out.log").read_text()
    assert re.search(r"dashboard: redeploy \S+ started by ada \(admin, from 127\.0\.0\.1\)", out)


async def test_a_running_deploy_is_cancelled_from_the_page(project: Path, tmp_path: Path
                                                           ) -> None:
    session = new_session_dir(project / "logs")
    password = new_secret()
    settings = dash_settings(tmp_path, password=password, token=new_secret())
    async with serving(settings, slow_step) as s, browser() as client:
        await sign_in(client, s.url, password, name="ada")
        csrf = await csrf_of(client, f"{s.url}/dashboard/confirm/redeploy")
        async with client.post(f"{s.url}/dashboard/actions/redeploy", data={"csrf": csrf},
                               allow_redirects=False) as r:
            where = r.headers["Location"]
        deploy_id = where.rsplit("/", 1)[1]
        csrf = await csrf_of(client, f"{s.url}/dashboard/confirm/cancel/{deploy_id}")
        async with client.post(f"{s.url}/dashboard/actions/cancel/{deploy_id}",
                               data={"csrf": csrf}, allow_redirects=False) as r:
            assert r.status == 303
        text = await wait_status(client, s.url + where, "cancelled")
        assert "cancelled by ada" in text
    assert f"dashboard: deploy {deploy_id} cancelled by ada" in (session / "out.log").read_text()


async def test_an_action_without_the_csrf_token_is_refused_and_does_nothing(
        project: Path, tmp_path: Path) -> None:
    new_session_dir(project / "logs")
    password, viewer = new_secret(), new_secret()
    settings = dash_settings(tmp_path, password=password, viewer=viewer, token=new_secret())
    async with serving(settings, phased_step) as s, browser() as client:
        url = f"{s.url}/dashboard/actions/redeploy"
        async with client.post(url, data={}, allow_redirects=False) as r:
            assert r.status == 403  # not signed in
        await sign_in(client, s.url, password)
        csrf = await csrf_of(client, f"{s.url}/dashboard/confirm/redeploy")
        for data, headers in (({}, {}), ({"csrf": "x" + csrf[1:]}, {}),
                              ({"csrf": csrf}, {"Origin": "https://evil.example"})):
            async with client.post(url, data=data, headers=headers,
                                   allow_redirects=False) as r:
                assert r.status == 403
                assert "CSRF" in await r.text()
        async with client.get(f"{s.url}/dashboard/deploys") as r:
            assert "No deploy yet" in await r.text()
        # a viewer has a CSRF token but may not act
        async with browser() as other:
            await sign_in(other, s.url, viewer, name="bob")
            async with other.get(f"{s.url}/dashboard/deploys") as r:
                assert "Redeploy" not in await r.text()
            csrf = await csrf_of(other, f"{s.url}/dashboard/confirm/redeploy")
            async with other.post(url, data={"csrf": csrf}, allow_redirects=False) as r:
                assert r.status == 403 and "read-only" in await r.text()
        async with client.get(f"{s.url}/dashboard/deploys") as r:
            assert "No deploy yet" in await r.text()


@pytest.mark.engine
async def test_doctor_runs_on_demand_for_a_viewer_too(project: Path, tmp_path: Path) -> None:
    password, viewer = new_secret(), new_secret()
    settings = dash_settings(tmp_path, password=password, viewer=viewer, token=new_secret())
    async with serving(settings) as s, browser() as client:
        await sign_in(client, s.url, viewer)
        csrf = await csrf_of(client, f"{s.url}/dashboard/doctor")
        async with client.post(f"{s.url}/dashboard/doctor", data={"csrf": csrf}) as r:
            text = await r.text()
    # the config is empty, so doctor says why in one sentence, or finds nothing running
    assert 'id="doctor-summary"' in text or 'class="error"' in text, text
    assert "Traceback" not in text
