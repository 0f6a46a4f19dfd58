"""Helpers for the dashboard tests: settings with a dashboard password, a signed-in client."""

from __future__ import annotations

import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
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


@dataclass
class Dashboard:
    """``loon dashboard`` running as a child for a test deployment."""

    proc: subprocess.Popen[str]
    url: str
    password: str
    stderr_path: Path

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.stderr_path.read_text()


def start_dashboard(tmp: Path, env: dict[str, str], config: Path, *extra: str,
                    password: str | None = None) -> Dashboard:
    """Start ``loon dashboard --port 0`` and wait for the address it prints."""
    password = password or new_secret()
    secrets_file = write_secrets(tmp / "dash-secrets" / ".env.secrets",
                                 DASHBOARD_PASSWORD=password)
    err = tmp / "dashboard.stderr"
    fh = open(err, "w")  # noqa: SIM115 (the child owns it)
    proc = subprocess.Popen([sys.executable, "-m", "loon_supervisor", "dashboard",
                             "--env-file", str(secrets_file), "--config-file", str(config),
                             "--port", "0", "--logs-dir", str(tmp / "dash-deploys"), *extra],
                            env=env, stdout=subprocess.DEVNULL, stderr=fh, text=True)
    fh.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        m = re.search(r"dashboard on (http\S+)/dashboard/", err.read_text())
        if m:
            return Dashboard(proc, m.group(1), password, err)
        if proc.poll() is not None:
            raise AssertionError(f"loon dashboard exited: {err.read_text()}")
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"loon dashboard did not start: {err.read_text()}")
