"""Helpers for the dashboard tests: settings with a dashboard password, a signed-in client."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

from loon_supervisor.deploy import DeployServer, DeployStep, ServerSettings, load_settings


def new_secret() -> str:
    return secrets.token_hex(32)


def write_secrets(path: Path, **values: str | None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items() if v is not None))
    path.chmod(0o600)
    return path


def dash_settings(tmp: Path, *, password: str, viewer: str | None = None,
                  token: str | None = None, webhooks: bool = True,
                  **kwargs: Any) -> ServerSettings:
    env = write_secrets(tmp / "secrets" / ".env.secrets",
                        DEPLOYMENT_AUTH_TOKEN=token if webhooks else None,
                        DASHBOARD_PASSWORD=password, DASHBOARD_VIEWER_PASSWORD=viewer)
    config = tmp / "config.json"
    if not config.exists():
        config.write_text("{}")
    kwargs.setdefault("logs_root", tmp / "deploy-logs")
    kwargs.setdefault("repo_dir", tmp)
    kwargs.setdefault("host", "127.0.0.1")
    kwargs.setdefault("port", 0)
    return load_settings(env, config_file=config, webhooks=webhooks, **kwargs)


@asynccontextmanager
async def serving(settings: ServerSettings, step: DeployStep | None = None
                  ) -> AsyncIterator[DeployServer]:
    async with DeployServer(settings, step) as server:
        yield server


def browser(**kwargs: Any) -> aiohttp.ClientSession:
    """A client that keeps cookies for an IP host and does not follow redirects by itself."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), **kwargs)


async def sign_in(client: aiohttp.ClientSession, base: str, password: str,
                  name: str = "ada") -> aiohttp.ClientResponse:
    return await client.post(f"{base}/dashboard/login", data={"name": name,
                                                               "password": password},
                             allow_redirects=False)


async def csrf_of(client: aiohttp.ClientSession, url: str) -> str:
    """The CSRF token in a page's forms."""
    async with client.get(url) as r:
        text = await r.text()
    m = re.search(r'name="csrf" value="([^"]+)"', text)
    assert m, f"no CSRF field in {url}"
    return m.group(1)
