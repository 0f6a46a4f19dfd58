"""Issue 28, the registry path: swarm mode with ``imageRegistry`` pushes the built image to a
real registry (Debian's ``docker-registry``, on loopback) and deploys it by digest, so every
node runs the bytes the registry holds; a push that fails is one sentence and nothing is
deployed."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, base_config
from tests.engine_helpers import wait_until
from tests.images import write_context
from tests.remote.support import free_port
from tests.swarm.support import SwarmEngine, wait_swarm_up

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("engine")]

INSTALLED = "/usr/bin/docker-registry"
CACHE = Path.home() / ".cache" / "loon-tests" / "docker-registry"
MANIFESTS = ", ".join(["application/vnd.docker.distribution.manifest.v2+json",
                       "application/vnd.docker.distribution.manifest.list.v2+json",
                       "application/vnd.oci.image.manifest.v1+json",
                       "application/vnd.oci.image.index.v1+json"])


@pytest.fixture
def swarm_engine() -> Iterator[SwarmEngine]:
    engine = SwarmEngine(Path(f"/tmp/lsw-{uuid.uuid4().hex[:6]}"))
    try:
        engine.start()
        yield engine
    finally:
        engine.destroy()


def registry_binary() -> str:
    """Debian's registry binary, unpacked from its package into a cache when it is not
    installed: installing the package would start a registry on every interface."""
    if os.path.exists(INSTALLED):
        return INSTALLED
    unpacked = CACHE / "usr" / "bin" / "docker-registry"
    if not unpacked.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        fetch = ["apt-get", "download", "docker-registry"]
        if subprocess.run(fetch, cwd=CACHE, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], check=True, capture_output=True)
            subprocess.run(fetch, cwd=CACHE, check=True, capture_output=True)
        deb = next(CACHE.glob("docker-registry_*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(deb), str(CACHE)], check=True)
    return str(unpacked)


def serve_registry(tmp_path: Path, login: tuple[str, str] | None = None
                   ) -> Iterator[str]:
    """A registry on 127.0.0.1 (insecure by default for every engine: loopback); with
    ``login``, it refuses anyone without that user and password (htpasswd, bcrypt)."""
    binary = registry_binary()
    address = f"127.0.0.1:{free_port()}"
    auth = ""
    if login is not None:
        import bcrypt

        user, password = login
        hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()
        (tmp_path / "htpasswd").write_text(f"{user}:{hashed}\n")
        auth = (f"auth:\n  htpasswd:\n    realm: loon-test\n"
                f"    path: {tmp_path / 'htpasswd'}\n")
    (tmp_path / "registry.yml").write_text(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {tmp_path / 'registry'}\nhttp:\n  addr: {address}\n{auth}")
    with open(tmp_path / "registry.log", "wb") as log:
        proc = subprocess.Popen([binary, "serve", str(tmp_path / "registry.yml")],
                                stdout=log, stderr=log, start_new_session=True)
    try:
        def answers() -> bool:
            try:
                with urllib.request.urlopen(f"http://{address}/v2/", timeout=2) as r:
                    return r.status == 200
            except urllib.error.HTTPError as exc:
                return exc.code == 401 and login is not None
            except OSError:
                return False
        wait_until(answers, timeout=30, interval=0.2)
        yield address
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp_path / "registry", ignore_errors=True)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[str]:
    yield from serve_registry(tmp_path)


LOGIN = ("loon", "registry-pass-" + uuid.uuid4().hex[:8])


@pytest.fixture
def guarded_registry(tmp_path: Path) -> Iterator[str]:
    yield from serve_registry(tmp_path, LOGIN)


def _project(tmp_path: Path, swarm_engine: SwarmEngine, registry: str
             ) -> tuple[str, Path, dict[str, str]]:
    name = f"loon-rg-{uuid.uuid4().hex[:6]}"
    ctx = write_context(tmp_path / "image", {"core": "echo core up; exec sleep 100000",
                                             "celery": "echo celery up; exec sleep 100000"})
    config = tmp_path / "config.json"
    config.write_text(json.dumps(base_config(
        tmp_path / "data", containerName=name, imageTag=f"loon-test:{name}",
        imageDirectory=str(ctx), networkMode="host", buildNetworkMode="host",
        minioSourceUrl=None, stopTimeout=3, orchestrator="swarm", celeryReplicas=1,
        imageRegistry=registry), indent=2))
    project = tmp_path / "project"
    project.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOON_", "DOCKER_"))}
    env.update(DOCKER_HOST=swarm_engine.host, LOON_PROJECT_ROOT=str(project),
               DOCKER_CONFIG=str(tmp_path / "docker-config"))  # no one's credentials
    return name, config, env


def _registry_digest(registry: str, repo: str, tag: str) -> str:
    request = urllib.request.Request(f"http://{registry}/v2/{repo}/manifests/{tag}",
                                     method="HEAD", headers={"Accept": MANIFESTS})
    with urllib.request.urlopen(request, timeout=10) as r:
        return str(r.headers["Docker-Content-Digest"])


def test_swarm_up_pushes_and_deploys_by_digest(swarm_engine: SwarmEngine, registry: str,
                                               tmp_path: Path) -> None:
    name, config, env = _project(tmp_path, swarm_engine, registry)
    project = Path(env["LOON_PROJECT_ROOT"])
    proc = subprocess.Popen([sys.executable, str(ROOT / "build.py"), "--config-file",
                             str(config)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    out_log = project / "logs" / "latest" / "out.log"
    try:
        wait_swarm_up(proc, out_log)
        text = out_log.read_text()
        said = re.search(rf"pushed {re.escape(registry)}/loon-test:(\S+) as (sha256:[0-9a-f]{{64}})",
                         text)
        assert said is not None, text[-2000:]
        tag, digest = said.groups()
        assert tag.startswith(name)  # the version's tag (<imageTag>-<UTC time>)
        assert _registry_digest(registry, "loon-test", tag) == digest
        for role in ("core", "celery"):
            image = swarm_engine.docker(
                "service", "inspect", f"{name}-{role}", "--format",
                "{{.Spec.TaskTemplate.ContainerSpec.Image}}").stdout.strip()
            assert image == f"{registry}/loon-test:{tag}@{digest}", image
        session = out_log.resolve().parent
        wait_until(lambda: b"celery up\n" in b"".join(
            p.read_bytes() for p in session.glob("celery.*.log")), timeout=60)
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, output
    assert swarm_engine.docker("service", "ls", "-q").stdout.strip() == ""


def test_a_failed_push_is_one_sentence_and_deploys_nothing(swarm_engine: SwarmEngine,
                                                           tmp_path: Path) -> None:
    nobody = f"127.0.0.1:{free_port()}"  # no registry listens there
    name, config, env = _project(tmp_path, swarm_engine, nobody)
    done = subprocess.run([sys.executable, str(ROOT / "build.py"), "--config-file",
                           str(config)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    said = done.stdout + done.stderr
    errors = [line for line in said.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, said
    assert f"pushing {nobody}/loon-test:{name}" in errors[0] and "nothing was deployed" in errors[0]
    assert swarm_engine.docker("service", "ls", "-q").stdout.strip() == ""
    assert swarm_engine.docker("ps", "-aq").stdout.strip() == ""


def test_the_push_uses_the_engines_credentials_and_prints_none(
        swarm_engine: SwarmEngine, guarded_registry: str, tmp_path: Path) -> None:
    """The registry refuses anyone without the login; the credentials come from the docker
    CLI's config (``$DOCKER_CONFIG/config.json``, as `docker login` writes it) and never
    reach the terminal or out.log. Without them the push fails as one sentence."""
    import base64

    name, config, env = _project(tmp_path, swarm_engine, guarded_registry)
    build = [sys.executable, str(ROOT / "build.py"), "--config-file", str(config)]
    refused = subprocess.run(build, cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=300)
    assert refused.returncode != 0 and "nothing was deployed" in refused.stdout + refused.stderr
    assert swarm_engine.docker("service", "ls", "-q").stdout.strip() == ""

    user, password = LOGIN
    docker_config = Path(env["DOCKER_CONFIG"])
    docker_config.mkdir(parents=True, exist_ok=True)
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    (docker_config / "config.json").write_text(json.dumps(
        {"auths": {guarded_registry: {"auth": token}}}))
    project = Path(env["LOON_PROJECT_ROOT"])
    proc = subprocess.Popen(build, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    out_log = project / "logs" / "latest" / "out.log"
    try:
        wait_swarm_up(proc, out_log)
        assert f"pushed {guarded_registry}/loon-test:" in out_log.read_text()
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, output
    everything = output + refused.stdout + refused.stderr + "".join(
        p.read_text(errors="replace") for p in (project / "logs").rglob("*.log"))
    assert password not in everything and token not in everything
