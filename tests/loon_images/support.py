"""The real Loon images (docker/ and docker-local/) deployed through the supervisor, as an
operator deploys them: a config derived from config.example.json, `build.py -d`, then
`loon status` until every service is RUNNING. Probes reach the services the way Loon's
users and its own services do: TCP on 127.0.0.1 (host networking), HTTP(S) through nginx,
and `mariadb` run inside the container.

Host networking means fixed ports (MariaDB 3306, Redis 6379, DuckDB 3000, nginx on the
configured ports): one Loon at a time on a machine. These tests run sequentially (one
module-scoped deployment per image) and refuse to start while something else holds a port.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiodocker
import anyio

from tests.conftest import ROOT
from tests.engine_helpers import Deployment, container_files, containers_named

T = TypeVar("T")

STANDIN = ROOT / "docker-common" / "standin-loon"
HTTP_PORT = 18080
HTTPS_PORT = 18443
FIXED_PORTS = {3306: "MariaDB", 6379: "Redis", 3000: "DuckDB server"}
PORTS = {**FIXED_PORTS, HTTP_PORT: "nginx (http)", HTTPS_PORT: "nginx (https)"}
# Cold builds measured on a 2-core CI machine: production ~110 s, local ~138 s.
BUILD_TIMEOUT = 1800
HEALTHY_TIMEOUT = 240


# ---------------------------------------------------------------- preconditions

def ensure_base_image(image: str = "debian:bookworm-slim") -> None:
    """CI creates the base image when it is missing (scripts/ensure-base-image.sh: pull, or
    debootstrap where no registry answers). With LOON_CI_CACHE_DIR set, the image is also
    kept there as a `docker save` tarball and loaded from it on a machine without it: that
    saves the debootstrap (~30 s and the network), and a loaded image keeps its ID, so a
    build cache kept alongside stays valid (a new debootstrap would invalidate all of it)."""
    cache = os.environ.get("LOON_CI_CACHE_DIR")
    tarball = Path(cache) / f"{image.replace(':', '_').replace('/', '_')}.tar" if cache else None
    if tarball is not None and tarball.is_file() and not _image_exists(image):
        subprocess.run(["docker", "load", "-q", "-i", str(tarball)], capture_output=True,
                       timeout=300)
    result = subprocess.run(["bash", str(ROOT / "scripts" / "ensure-base-image.sh"), image],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"no base image: {result.stdout}{result.stderr}"
    if tarball is not None and not tarball.is_file():
        tarball.parent.mkdir(parents=True, exist_ok=True)
        part = tarball.with_suffix(".part")
        subprocess.run(["docker", "save", "-o", str(part), image], check=True,
                       capture_output=True, timeout=300)
        part.replace(tarball)


def _image_exists(image: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", image], capture_output=True
                          ).returncode == 0


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def wait_ports_free(timeout: float = 300) -> None:
    """Host networking: another Loon (or anything) on these ports would answer our probes."""
    deadline = time.monotonic() + timeout
    while True:
        busy = {p: what for p, what in PORTS.items() if port_open(p)}
        if not busy:
            return
        if time.monotonic() > deadline:
            holders = subprocess.run(["ss", "-ltnp"], capture_output=True, text=True).stdout
            raise AssertionError(
                f"ports needed by the image tests are held by something else for {timeout}s: "
                f"{busy}; stop it (only one host-networked Loon can run at a time)\n{holders}")
        time.sleep(2)


# ---------------------------------------------------------------- configuration

def example_config() -> dict[str, Any]:
    data = json.loads((ROOT / "config.example.json").read_text())
    data.pop("$schema", None)
    return data


def make_self_signed(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", str(directory / "loon.key"), "-out", str(directory / "loon.crt")],
                   check=True, capture_output=True)


def image_config(base: Path, kind: str, name: str, *, https: bool,
                 mysql: dict[str, str] | None = None) -> dict[str, Any]:
    """config.example.json adapted to CI: host networking, free ports, volumes under ``base``,
    the machine's CA bundle for pip in the build, no MinIO (not fetchable here)."""
    cfg = example_config()
    cfg["generalSettings"]["environment"] = kind
    cfg["generalSettings"]["useHttp"] = not https
    cfg["mySqlSettings"]["sourceVolumeLocation"] = str(base / "mysql-data")
    cfg["mySqlSettings"].update(mysql or {})
    if kind == "production":
        cfg["minioSettings"]["sourceVolumeLocation"] = str(base / "minio-data")
        # The stand-in Django project reads the environment as Loon's settings do.
        cfg["deploymentSettings"]["loonSourceLocation"] = str(STANDIN)
    else:
        cfg.pop("minioSettings", None)
        cfg["localDataSettings"] = {"sourceVolumeLocation": str(base / "local-data")}
    if https:
        make_self_signed(base / "ssl")
        cfg["nginxSettings"] = {"sourceVolumeLocation": str(base / "ssl"),
                                "certFileLocation": "loon.crt", "keyFileLocation": "loon.key"}
    cfg["deploymentSettings"].update(
        containerName=name, imageTag=f"loon-ci:{'prod' if kind == 'production' else 'local'}",
        imageDirectory=str(ROOT / ("docker" if kind == "production" else "docker-local")),
        networkMode="host", buildNetworkMode="host",
        extraCaCertificate="/etc/ssl/certs/ca-certificates.crt", minioSourceUrl=None,
        httpPort=HTTP_PORT, httpsPort=HTTPS_PORT, stopTimeout=60)
    return cfg


# ---------------------------------------------------------------- the deployment

@dataclass
class Loon:
    deployment: Deployment
    config: dict[str, Any]
    build_seconds: float = 0.0
    up_output: str = ""

    @property
    def name(self) -> str:
        return self.deployment.name

    @property
    def mysql(self) -> dict[str, str]:
        return self.config["mySqlSettings"]

    def session(self) -> Path:
        return self.deployment.session()

    def up(self) -> None:
        wait_ports_free()
        started = time.monotonic()
        result = self.deployment.run("-d", timeout=BUILD_TIMEOUT)
        self.build_seconds = time.monotonic() - started
        self.up_output = result.stdout + result.stderr
        out_log = self.session() / "out.log"
        tail = out_log.read_text(errors="replace")[-6000:] if out_log.exists() else ""
        assert result.returncode == 0, (
            f"build.py -d exited {result.returncode}\n{self.up_output}\n--- out.log tail\n{tail}")
        self.wait_healthy()

    def status(self) -> subprocess.CompletedProcess[str]:
        return self.deployment.loon("status", "--config-file", str(self.deployment.config))

    def wait_healthy(self, timeout: float = HEALTHY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while True:
            st = self.status()
            if st.returncode == 0:
                return
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                                 for p in sorted(self.session().glob("*.log")))
                raise AssertionError(f"not healthy within {timeout}s (loon status exited "
                                     f"{st.returncode}):\n{st.stdout}{st.stderr}\n{logs}")
            time.sleep(2)

    def down(self) -> subprocess.CompletedProcess[str]:
        return self.deployment.run("-D", timeout=300)

    def cleanup(self) -> None:
        try:
            self.down()
        finally:
            self.deployment.cleanup()


def deploy(base: Path, kind: str, *, https: bool,
           mysql: dict[str, str] | None = None,
           prepare: Callable[[Path], None] | None = None) -> Loon:
    """Write the config and build + start the image; the caller tears down with cleanup()."""
    name = f"loon-ci-{kind[:5]}-{uuid.uuid4().hex[:6]}"
    cfg = image_config(base, kind, name, https=https, mysql=mysql)
    if prepare is not None:
        prepare(base)
    path = base / "config.json"
    path.write_text(json.dumps(cfg, indent=2))
    return Loon(Deployment(base, name, path, base / "project"), cfg)


# ---------------------------------------------------------------- probes

def retry(probe: Callable[[], T], timeout: float = 60, interval: float = 0.5) -> T:
    """probe() until it returns without raising; its last error when time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return probe()
        except (AssertionError, OSError) as exc:
            if time.monotonic() > deadline:
                raise AssertionError(f"still failing after {timeout}s: {exc!r}") from exc
            time.sleep(interval)


async def _exec(name: str, cmd: list[str]) -> tuple[int, bytes]:
    from loon_supervisor.engine.exec.commands import run_capture
    async with aiodocker.Docker() as docker:
        found = await docker.containers.list(filters={"name": [f"^/{name}$"]})
        assert found, f"container {name} is not running"
        return await run_capture(docker, found[0].id, cmd)


def exec_in(name: str, *cmd: str) -> tuple[int, str]:
    code, out = anyio.run(_exec, name, list(cmd), backend="asyncio")
    return code, out.decode(errors="replace")


def mariadb(loon: Loon, sql: str, *, user: str | None = None, password: str | None = None,
            database: str | None = None) -> tuple[int, str]:
    """The mariadb client inside the container, over TCP to 127.0.0.1 as the configured user."""
    m = loon.mysql
    args = ["mariadb", "--no-defaults", "--protocol=tcp", "-h127.0.0.1", "-P3306",
            f"-u{user or m['databaseUser']}",
            f"--password={m['databasePassword'] if password is None else password}",
            "--batch", "--skip-column-names"]
    if database:
        args.append(f"--database={database}")
    return exec_in(loon.name, *args, "-e", sql)


def mariadb_ok(loon: Loon, sql: str, **kw: str) -> str:
    code, out = mariadb(loon, sql, **kw)
    assert code == 0, f"mariadb exited {code}: {out}"
    return out


def redis_ping(port: int = 6379) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"PING\r\n")
        return s.recv(64)


def unverified_tls() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        return None


def http(url: str, data: bytes | None = None, headers: dict[str, str] | None = None,
         method: str | None = None) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body); errors are answers too; redirects are not followed."""
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    opener = urllib.request.build_opener(_NoRedirect,
                                         urllib.request.HTTPSHandler(context=unverified_tls()))
    try:
        with opener.open(req, timeout=15) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def duckdb_query(url: str, sql: str) -> Any:
    status, _, body = http(url, json.dumps({"type": "json", "sql": sql}).encode(),
                           {"Content-Type": "application/json"}, "POST")
    assert status == 200, f"{url}: HTTP {status} {body[:300]!r}"
    return json.loads(body)


async def _duckdb_ws(url: str, sql: str) -> Any:
    import aiohttp
    async with aiohttp.ClientSession() as session, session.ws_connect(
            url, ssl=unverified_tls() if url.startswith("wss") else True,
            timeout=aiohttp.ClientWSTimeout(ws_close=10)) as ws:
        await ws.send_str(json.dumps({"type": "json", "sql": sql}))
        msg = await ws.receive(timeout=30)
        assert msg.type == aiohttp.WSMsgType.TEXT, f"unexpected WebSocket message {msg!r}"
        return json.loads(msg.data)


def duckdb_ws_query(url: str, sql: str) -> Any:
    return anyio.run(_duckdb_ws, url, sql, backend="asyncio")


# ---------------------------------------------------------------- logs

def assert_logs_match(loon: Loon, services: list[str], timeout: float = 60) -> None:
    """Each service's host log file in logs/logs_*/ is non-empty and, once the services are
    quiet, byte-identical to the file the service writes inside the container."""
    session = loon.session()
    assert session.parent.name == "logs" and session.name.startswith("logs_"), session
    mismatched: list[str] = []

    def all_equal() -> bool:
        inside = container_files(loon.name)
        mismatched.clear()
        for svc in services:
            host = session / f"{svc}.log"
            data = host.read_bytes() if host.exists() else b""
            if not data or data != inside.get(f"{svc}.log"):
                mismatched.append(f"{svc}: host {len(data)} B, container "
                                  f"{len(inside.get(f'{svc}.log') or b'')} B")
        return not mismatched

    deadline = time.monotonic() + timeout
    while not all_equal():
        if time.monotonic() > deadline:
            raise AssertionError(f"log files differ after {timeout}s: {mismatched}")
        time.sleep(0.5)


def image_labels(tag: str) -> dict[str, str]:
    async def labels() -> dict[str, str]:
        async with aiodocker.Docker() as docker:
            info = await docker.images.inspect(tag)
            return dict((info.get("Config") or {}).get("Labels") or {})
    return anyio.run(labels, backend="asyncio")


def assert_gone(name: str) -> None:
    assert containers_named(name) == [], f"container {name} still exists after -D"
