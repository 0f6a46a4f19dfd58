"""Helpers for the deploy-server tests: secrets files, settings, an in-process server, HTTP."""

from __future__ import annotations

import json
import re
import secrets
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import anyio

from loon_supervisor.deploy import DeployServer, DeployStep, load_settings
from loon_supervisor.deploy.auth import signature

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / ".build-files" / "deploy-server.py"
TERMINAL = ("succeeded", "failed", "cancelled")


def new_token() -> str:
    return secrets.token_urlsafe(36)  # 48 characters


def write_secrets(path: Path, token: str | None, **extra: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"DEPLOYMENT_AUTH_TOKEN={token}"] if token is not None else []
    lines += [f"{k}={v}" for k, v in extra.items()]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


def make_settings(tmp: Path, token: str, *, webhook_secret: str | None = None,
                  **kwargs: Any):  # type: ignore[no-untyped-def]
    extra = {"DEPLOYMENT_WEBHOOK_SECRET": webhook_secret} if webhook_secret else {}
    env_file = write_secrets(tmp / "secrets" / ".env.secrets", token, **extra)
    config = kwargs.pop("config_file", None)
    if config is None:
        config = tmp / "config.json"
        if not config.exists():
            config.write_text("{}")
    kwargs.setdefault("logs_root", tmp / "deploy-logs")
    kwargs.setdefault("repo_dir", tmp)
    return load_settings(env_file, host="127.0.0.1", port=0, config_file=config, **kwargs)


@asynccontextmanager
async def running_server(settings, step: DeployStep | None = None  # type: ignore[no-untyped-def]
                         ) -> AsyncIterator[DeployServer]:
    async with DeployServer(settings, step) as server:
        yield server


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str]
    text: str


async def call(method: str, url: str, *, token: str | None = None, raw_auth: str | None = None,
               data: bytes | Any = None, headers: dict[str, str] | None = None,
               ssl_context: ssl.SSLContext | None = None) -> Answer:
    hdrs = dict(headers or {})
    if raw_auth is not None:
        hdrs["Authorization"] = raw_auth
    elif token is not None:
        hdrs["Authorization"] = f"Bearer {token}"
    connector = aiohttp.TCPConnector(ssl=ssl_context) if ssl_context else None
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.request(method, url, data=data, headers=hdrs) as resp:
            text = await resp.text()
            try:
                body = json.loads(text)
            except ValueError:
                body = None
            return Answer(resp.status, body, dict(resp.headers), text)


async def wait_terminal(base: str, deploy_id: str, token: str, timeout: float = 30,
                        ssl_context: ssl.SSLContext | None = None) -> dict[str, Any]:
    with anyio.fail_after(timeout):
        while True:
            ans = await call("GET", f"{base}/deploy/{deploy_id}", token=token,
                             ssl_context=ssl_context)
            assert ans.status == 200, ans.text
            if ans.body["status"] in TERMINAL:
                return ans.body
            await anyio.sleep(0.05)


def signed(body: bytes, secret: str, delivery: str | None = None) -> dict[str, str]:
    """Signature headers plus a delivery id (a fresh one unless given: replays are refused)."""
    import uuid

    from pydantic import SecretStr

    return {"X-Hub-Signature-256": signature(body, SecretStr(secret)),
            "X-GitHub-Delivery": delivery or str(uuid.uuid4())}


def push_body(commit: str | None = None, **extra: Any) -> bytes:
    """A GitHub-style push body naming a commit (a fresh random one unless given): signed
    deploys must name the commit they deploy, and each commit deploys once."""
    return json.dumps({"ref": "refs/heads/main", "after": commit or secrets.token_hex(20),
                       **extra}).encode()


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


def files_containing(root: Path, needle: str, skip: tuple[Path, ...] = ()) -> list[Path]:
    """Every regular file below root whose bytes contain needle (symlinks not followed)."""
    hits = []
    raw = needle.encode()
    for path in root.rglob("*"):
        if path.is_symlink() or not path.is_file() or path in skip:
            continue
        try:
            if raw in path.read_bytes():
                hits.append(path)
        except OSError:
            continue
    return hits


class StubServer:
    """``tests/deploy/stub_server.py`` as a child process (the production ``run_deploy_server``
    with a stand-in step), optionally under ``prlimit --nofile=N``; stderr goes to a file.

    ``with StubServer(tmp, "ok", token, [...]) as srv:`` waits for its URL; leaving sends
    SIGTERM and waits for the exit code (``srv.returncode``)."""

    def __init__(self, tmp: Path, step: str, token: str, args: list[str] | None = None, *,
                 nofile: int | None = None, webhook_secret: str | None = None,
                 env: dict[str, str] | None = None) -> None:
        extra = {"DEPLOYMENT_WEBHOOK_SECRET": webhook_secret} if webhook_secret else {}
        env_file = write_secrets(tmp / "secrets" / ".env.secrets", token, **extra)
        config = tmp / "config.json"
        if not config.exists():
            config.write_text("{}")
        self.logs_root = tmp / "deploy-logs"
        self.stderr_path = tmp / "server.stderr"
        cmd = [sys.executable, "-m", "tests.deploy.stub_server", step, "--env-file",
               str(env_file), "--config-file", str(config), "--logs-dir", str(self.logs_root),
               "--host", "127.0.0.1", "--port", "0", *(args or [])]
        if nofile is not None:
            cmd = ["prlimit", f"--nofile={nofile}", *cmd]
        self.cmd = cmd
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.returncode: int | None = None

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def __enter__(self) -> StubServer:
        with self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(self.cmd, cwd=ROOT, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=err, env=self.env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            m = re.search(r"listening on (\S+)", self.stderr())
            if m:
                self.url = m.group(1)
                return self
            if self.proc.poll() is not None:
                raise AssertionError(f"stub server exited {self.proc.returncode}: "
                                     f"{self.stderr()[-2000:]}")
            time.sleep(0.05)
        self.proc.kill()
        raise AssertionError(f"stub server did not start: {self.stderr()[-2000:]}")

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.returncode = self.proc.returncode

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])
