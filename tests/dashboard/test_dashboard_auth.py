"""Signing in to the dashboard under the deploy server's rules (issue 30, security first)."""

from __future__ import annotations

import re
import ssl
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from loon_supervisor.errors import ConfigError
from tests.certs import make_pair
from tests.dashboard.support import (
    browser,
    dash_settings,
    new_secret,
    serving,
    sign_in,
)

pytestmark = pytest.mark.anyio


async def test_login_sets_a_strict_cookie_and_logout_ends_the_session(tmp_path: Path) -> None:
    password = new_secret()
    settings = dash_settings(tmp_path, password=password, token=new_secret())
    async with serving(settings) as server, browser() as client:
        async with client.get(f"{server.url}/dashboard/", allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == "/dashboard/login"
        async with await sign_in(client, server.url, password) as r:
            assert r.status == 303
            cookie = r.headers["Set-Cookie"]
        assert cookie.startswith("loon-dashboard=")
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert "Secure" not in cookie  # plain HTTP on loopback: a Secure cookie is never sent
        assert password not in cookie
        async with client.get(f"{server.url}/dashboard/", allow_redirects=False) as r:
            assert r.status == 200
            page = await r.text()
        assert "Signed in as ada" in page or "ada" in page
        async with client.post(f"{server.url}/dashboard/logout", allow_redirects=False) as r:
            assert r.status == 303
        async with client.get(f"{server.url}/dashboard/", allow_redirects=False) as r:
            assert r.status == 303


async def test_pages_have_a_strict_csp_and_no_inline_script(tmp_path: Path) -> None:
    settings = dash_settings(tmp_path, password=new_secret(), token=new_secret())
    async with serving(settings) as server, browser() as client:
        async with client.get(f"{server.url}/dashboard/login") as r:
            csp = r.headers["Content-Security-Policy"]
            text = await r.text()
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    scripts = re.findall(r"<script[^>]*>", text)
    assert scripts and all('src="/dashboard/static/' in s for s in scripts)
    assert re.search(r"<script[^>]*>\s*[^<\s]", text) is None  # no inline body
    assert re.search(r"<[^>]*\son[a-z]+\s*=", text) is None  # no onclick= style handlers


async def test_wrong_passwords_lock_the_address_out_of_login_and_deploy_alike(
        tmp_path: Path) -> None:
    password, token = new_secret(), new_secret()
    settings = dash_settings(tmp_path, password=password, token=token, max_auth_failures=3)
    async with serving(settings) as server, browser() as client:
        for _ in range(3):
            async with await sign_in(client, server.url, "wrong-" + new_secret()) as r:
                assert r.status == 403
                assert "wrong password" in await r.text()
        async with await sign_in(client, server.url, "wrong-" + new_secret()) as r:
            assert r.status == 429
            assert "too many failed sign-ins" in await r.text()
            assert int(r.headers["Retry-After"]) > 0
        # the same counter as the deploy token's: the webhook is locked out too
        async with client.get(f"{server.url}/deploy/20250101T000000Z-00000000",
                              headers={"Authorization": "Bearer nope"}) as r:
            assert r.status == 429
        # and, like the deploy token, the right password is never refused
        async with await sign_in(client, server.url, password) as r:
            assert r.status == 303


async def test_over_tls_the_cookie_is_secure_and_host_bound(tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    make_pair(cert, key)
    password = new_secret()
    settings = dash_settings(tmp_path, password=password, token=new_secret(), tls_cert=cert,
                             tls_key=key)
    ctx = ssl.create_default_context(cafile=str(cert))
    ctx.check_hostname = False
    async with serving(settings) as server, browser(
            connector=aiohttp.TCPConnector(ssl=ctx)) as client:
        assert server.url.startswith("https://")
        async with await sign_in(client, server.url, password) as r:
            cookie = r.headers["Set-Cookie"]
    assert cookie.startswith("__Host-loon-dashboard=")
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie


async def test_a_post_from_another_origin_cannot_sign_in(tmp_path: Path) -> None:
    password = new_secret()
    settings = dash_settings(tmp_path, password=password, token=new_secret())
    async with serving(settings) as server, browser() as client:
        async with client.post(f"{server.url}/dashboard/login",
                               data={"name": "ada", "password": password},
                               headers={"Origin": "https://evil.example"},
                               allow_redirects=False) as r:
            assert r.status == 403
            assert "Set-Cookie" not in r.headers


def test_weak_or_reused_dashboard_passwords_are_refused(tmp_path: Path) -> None:
    token = new_secret()
    for bad, says in (("x7Q2mZ", "shorter than 32"), ("a" * 40, "guessable"),
                      (token, "repeats another secret")):
        with pytest.raises(ConfigError, match=says) as info:
            dash_settings(tmp_path, password=bad, token=token)
        assert bad not in str(info.value)


def test_without_a_dashboard_password_the_deploy_server_has_no_dashboard(
        tmp_path: Path) -> None:
    settings = dash_settings(tmp_path, password="", token=new_secret())
    assert settings.dashboard is None


async def test_loon_dashboard_alone_needs_no_token_and_serves_no_webhook(
        tmp_path: Path) -> None:
    password = new_secret()
    settings = dash_settings(tmp_path, password=password, webhooks=False)
    async with serving(settings) as server, browser() as client:
        async with client.post(f"{server.url}/deploy", data=b"{}") as r:
            assert r.status == 404
        async with await sign_in(client, server.url, password) as r:
            assert r.status == 303


def test_loon_dashboard_refuses_to_start_without_a_password(tmp_path: Path) -> None:
    env = tmp_path / ".env.secrets"
    env.write_text("DEPLOYMENT_AUTH_TOKEN=" + new_secret() + "\n")
    env.chmod(0o600)
    (tmp_path / "config.json").write_text("{}")
    done = subprocess.run([sys.executable, "-m", "loon_supervisor", "dashboard", "--env-file",
                           str(env), "--config-file", str(tmp_path / "config.json"),
                           "--port", "0"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "loon dashboard: refusing to start" in done.stderr
    assert "DASHBOARD_PASSWORD" in done.stderr and "Traceback" not in done.stderr


async def test_a_viewer_session_is_read_only(tmp_path: Path) -> None:
    password, viewer = new_secret(), new_secret()
    settings = dash_settings(tmp_path, password=password, viewer=viewer, token=new_secret())
    async with serving(settings) as server, browser() as client:
        async with await sign_in(client, server.url, viewer, name="bob") as r:
            assert r.status == 303
        async with client.get(f"{server.url}/dashboard/") as r:
            assert "bob (viewer)" in await r.text()
