"""A deployment for the versions tests: a tiny busybox image that serves its Loon source
checkout over HTTP on 127.0.0.1 (host network), where the checkout is a git copy of the
stand-in Loon (docker-common/standin-loon) plus an index page and a build script. A
commit to the checkout is "a source change": the next build serves it, and a build
script that fails is "a change that breaks the build"."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.engine_helpers import Deployment, make_deployment
from tests.loon_images.support import STANDIN

SERVICE = 'mkdir -p /tmp; echo "web on $PORT"; exec httpd -f -v -p 127.0.0.1:{port} -h /app/src'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def git(checkout: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(checkout), "-c", "user.name=test",
                           "-c", "user.email=test@example.org", *args],
                          check=True, capture_output=True, text=True).stdout.strip()


def commit(checkout: Path, files: dict[str, str], message: str) -> str:
    for name, text in files.items():
        (checkout / name).write_text(text)
    git(checkout, "add", "-A")
    git(checkout, "commit", "-qm", message)
    return git(checkout, "rev-parse", "HEAD")


@dataclass
class Site:
    deployment: Deployment
    checkout: Path
    port: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.deployment.name

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def get(self) -> str:
        with urllib.request.urlopen(self.url, timeout=2) as resp:  # noqa: S310
            return resp.read().decode()

    def up(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.deployment.run("-d", *args, timeout=300)

    def loon(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.deployment.loon(*args, "--config-file", str(self.deployment.config))

    def versions_file(self) -> dict[str, Any]:
        path = self.deployment.project / ".build-files" / f"versions.{self.name}.json"
        return dict(json.loads(path.read_text()))

    def cleanup(self) -> None:
        self.deployment.run("-D", timeout=120)
        self.deployment.cleanup()


def make_site(tmp_path: Path, *, stage: bool = False, **settings: Any) -> Site:
    """``stage``: the Dockerfile gets a first stage made from the checkout, whose last image
    every build leaves dangling (as the real image's builder stages do)."""
    checkout = tmp_path / "loon-src"
    shutil.copytree(STANDIN, checkout)
    git(checkout, "init", "-q")
    commit(checkout, {"index.html": "version 1\n", "build.sh": "echo building\n"}, "one")
    port = free_port()
    d = make_deployment(tmp_path, {"web": SERVICE.format(port=port)})
    ctx = tmp_path / "image"  # make_deployment's busybox context, plus the checkout
    dockerfile = (ctx / "Dockerfile").read_text().replace(
        "CMD [", "COPY loon-build/loon-src/ /app/src/\nRUN sh /app/src/build.sh\nCMD [")
    if stage:
        dockerfile = dockerfile.replace(
            "FROM scratch\n", "FROM scratch AS stage\nCOPY loon-build/loon-src/index.html "
            "/stage.html\nFROM scratch\n", 1).replace(
            "CMD [", "COPY --from=stage /stage.html /app/stage.html\nCMD [")
    (ctx / "Dockerfile").write_text(dockerfile)
    config = json.loads(d.config.read_text())
    config["deploymentSettings"].update(networkMode="host", loonSourceLocation=str(checkout),
                                        **settings)
    d.config.write_text(json.dumps(config, indent=2))
    return Site(d, checkout, port)


class Poller:
    """GET / every 100 ms in a thread; every failure is kept with its time."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.stop = threading.Event()
        self.answers: list[str] = []
        self.failures: list[str] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Poller:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                self.answers.append(self.site.get())
            except OSError as e:
                self.failures.append(f"{time.strftime('%H:%M:%S')}: {e!r}")
            time.sleep(0.1)
