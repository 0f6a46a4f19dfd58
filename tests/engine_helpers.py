"""Real deployments for engine tests: a tiny image, a config, build.py as a subprocess."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiodocker
import anyio

from tests.conftest import ROOT, base_config
from tests.images import write_context

HOOKS = ROOT / "tests" / "hooks"
VERSION_PROJECT_LABEL = "org.loon.version.project"
VERSION_TAG = re.compile(r"-[0-9]{8}T[0-9]{6}Z(-[0-9a-f]{7})?$")


@dataclass
class Deployment:
    root: Path
    name: str
    config: Path
    project: Path
    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    @property
    def logs(self) -> Path:
        return self.project / "logs"

    def session(self) -> Path:
        return (self.logs / "latest").resolve()

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOON_")}
        env["LOON_PROJECT_ROOT"] = str(self.project)
        env["PYTHONPATH"] = str(HOOKS)  # tests/hooks/sitecustomize.py: LOON_TEST_DELAY_*
        env.update(extra)
        return env

    def start(self, *args: str, **env: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen([sys.executable, str(ROOT / "build.py"), "--config-file",
                                 str(self.config), *args], cwd=self.root, env=self.env(**env),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.procs.append(proc)
        return proc

    def run(self, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(ROOT / "build.py"), "--config-file",
                               str(self.config), *args], cwd=self.root, env=self.env(**env),
                              capture_output=True, text=True, timeout=timeout)

    def loon(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "loon_supervisor", *args], cwd=self.root,
                              env=self.env(), capture_output=True, text=True, timeout=timeout)

    def wait_out_log(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.logs / "latest" / "out.log"
            if out.exists() and text in out.read_text(errors="replace"):
                return
            for p in self.procs:
                if p.poll() is not None and p.returncode not in (None, 0):
                    raise AssertionError(f"build.py exited {p.returncode}: {p.stdout.read()}")
            time.sleep(0.05)
        raise AssertionError(f"'{text}' not in out.log after {timeout}s")

    def cleanup(self) -> None:
        """Whatever a test left: its processes, a background logger, the container, the tag."""
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        subprocess.run(["pkill", "-9", "-f", f"_logger {self.name}$"], check=False)
        anyio.run(remove_containers, self.name, backend="asyncio")


def make_deployment(tmp_path: Path, services: dict[str, str], *, stop_timeout: int = 3,
                    **ctx_kwargs: Any) -> Deployment:
    name = f"loon-test-{uuid.uuid4().hex[:8]}"
    ctx = write_context(tmp_path / "image", services, **ctx_kwargs)
    config = tmp_path / "config.json"
    config.write_text(json.dumps(base_config(
        tmp_path / "data", containerName=name, imageTag=f"loon-test:{name}",
        imageDirectory=str(ctx), networkMode="none", buildNetworkMode="host",
        minioSourceUrl=None, stopTimeout=stop_timeout), indent=2))
    return Deployment(tmp_path, name, config, tmp_path / "project")


async def remove_containers(name: str) -> None:
    """Remove the deployment's container, its test image tag and its version tags (layers
    stay cached; a shared imageTag such as loon-ci:prod stays)."""
    async with aiodocker.Docker() as docker:
        for c in await docker.containers.list(all=True, filters={"name": [f"^/{name}$"]}):
            await c.delete(force=True, v=True)
        refs = [f"loon-test:{name}"]
        for image in await docker.images.list(filters={"label": [VERSION_PROJECT_LABEL]}):
            if str((image.get("Labels") or {}).get(VERSION_PROJECT_LABEL, "")
                   ).startswith(f"{name}@"):
                refs += [t for t in image.get("RepoTags") or [] if VERSION_TAG.search(t)]
        for ref in refs:
            try:
                await docker.images.delete(ref, noprune=True)
            except aiodocker.DockerError:
                pass


async def _containers(label: str | None, name: str | None) -> list[dict]:
    filters: dict[str, list[str]] = {}
    if label:
        filters["label"] = [label]
    if name:
        filters["name"] = [f"^/{name}$"]
    async with aiodocker.Docker() as docker:
        return [c._container for c in await docker.containers.list(all=True, filters=filters)]


def containers_named(name: str) -> list[dict]:
    return anyio.run(_containers, None, name, backend="asyncio")


async def _read_files(name: str, directory: str) -> dict[str, bytes]:
    from loon_supervisor.engine.exec.archive import read_files
    async with aiodocker.Docker() as docker:
        found = await docker.containers.list(all=True, filters={"name": [f"^/{name}$"]})
        return await read_files(docker, found[0].id, directory)


def container_files(name: str, directory: str = "/var/log/loon") -> dict[str, bytes]:
    """The in-container log files, read through the engine's archive endpoint."""
    return anyio.run(_read_files, name, directory, backend="asyncio")


def wait_until(predicate, timeout: float = 60, interval: float = 0.1,  # type: ignore[no-untyped-def]
               message=None) -> None:
    """``message`` (a callable) says what was seen when the condition never held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    seen = f": {message()}" if message is not None else ""
    raise AssertionError(f"condition not met within {timeout}s{seen}")


def children_of(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def stop_with(proc: subprocess.Popen[str], sig: int, timeout: float = 60) -> tuple[int, str]:
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


SIGINT, SIGTERM = signal.SIGINT, signal.SIGTERM


class PrivateEngine:
    """A second dockerd (with live-restore unless told otherwise: without it, its containers
    stop with it, as on a reboot), which a test may stop and start again."""

    def __init__(self, base: Path, live_restore: bool = True) -> None:
        self.base = base
        self.live_restore = live_restore
        self.sock = base / "docker.sock"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"unix://{self.sock}"

    def args(self) -> list[str]:
        b = self.base
        return ["dockerd", "--data-root", str(b / "data"), "--exec-root", str(b / "exec"),
                "--host", self.host, "--pidfile", str(b / "docker.pid"),
                "--containerd-namespace", f"loontest{b.name}",
                "--containerd-plugins-namespace", f"loontest{b.name}p",
                "--iptables=false", "--ip6tables=false", "--bridge=none"] + (
                    ["--live-restore"] if self.live_restore else [])

    def start(self, interval: float = 0.2) -> None:
        (self.base / "docker.pid").unlink(missing_ok=True)
        log = open(self.base / "dockerd.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(self.args(), stdout=log, stderr=log)
        log.close()
        wait_until(self.answers, timeout=60, interval=interval)

    def answers(self) -> bool:
        return subprocess.run(["docker", "-H", self.host, "info"], capture_output=True
                              ).returncode == 0

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)

    def destroy(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            subprocess.run(["sh", "-c", f"docker -H {self.host} rm -f -v "
                            f"$(docker -H {self.host} ps -aq) 2>/dev/null"], check=False)
        self.stop()
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
        for point in sorted((m for m in mounts if m.startswith(f"{self.base}/")),
                            reverse=True):  # what a stopped dockerd leaves (its netns)
            subprocess.run(["umount", point], capture_output=True)
        subprocess.run(["rm", "-rf", str(self.base)], check=False)
