"""A prebuilt image (deploymentSettings.image) pulled from a real registry on loopback
(Debian's docker-registry, with a password: the credentials come from the docker config,
as `docker login` writes them), deployed as a version like a built one."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.images import write_context
from tests.versions.support import SERVICE, free_port, make_site

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("engine")]

USER, PASSWORD = "tester", f"pw-{uuid.uuid4().hex}"


def _bcrypt(password: str) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # the registry's htpasswd needs bcrypt; glibc's crypt makes it

        return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))


class Registry:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.docker_config = base / "docker-config"
        self.log = base / "registry.log"
        base.mkdir(parents=True, exist_ok=True)
        (base / "htpasswd").write_text(f"{USER}:{_bcrypt(PASSWORD)}\n")
        (base / "config.yml").write_text(
            "version: 0.1\nstorage:\n  filesystem:\n"
            f"    rootdirectory: {base / 'data'}\n"
            f"http:\n  addr: {self.host}\n"
            f"auth:\n  htpasswd:\n    realm: test\n    path: {base / 'htpasswd'}\n")
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(["docker-registry", "serve", str(base / "config.yml")],
                                         stdout=out, stderr=out)
        deadline = time.monotonic() + 30
        while not self._answers():
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.2)
        login = subprocess.run(["docker", "--config", str(self.docker_config), "login",
                                self.host, "-u", USER, "--password-stdin"],
                               input=PASSWORD, capture_output=True, text=True)
        assert login.returncode == 0, login.stderr

    def _answers(self) -> bool:
        try:
            urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1)  # noqa: S310
        except urllib.error.HTTPError as exc:
            return exc.code == 401
        except OSError:
            return False
        return True

    def push(self, context: Path, ref: str) -> None:
        subprocess.run(["docker", "build", "-q", "-t", ref, str(context)], check=True,
                       capture_output=True, env={"DOCKER_BUILDKIT": "0", "PATH": "/usr/bin:/bin"})
        push = subprocess.run(["docker", "--config", str(self.docker_config), "push", ref],
                              capture_output=True, text=True)
        assert push.returncode == 0, push.stderr
        subprocess.run(["docker", "rmi", ref], check=True, capture_output=True)  # pull for real

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    setup = subprocess.run(["bash", str(ROOT / "scripts" / "ensure-registry.sh")],
                           capture_output=True, text=True)
    assert setup.returncode == 0, setup.stderr
    r = Registry(tmp_path / "registry")
    try:
        yield r
    finally:
        r.stop()


def test_prebuilt_image_from_the_loopback_registry_deploys(registry: Registry,
                                                           tmp_path: Path) -> None:
    site = make_site(tmp_path / "site")
    try:
        ctx = tmp_path / "prebuilt"
        write_context(ctx, {"web": SERVICE.format(port=site.port)}, extra_labels={
            "org.opencontainers.image.revision": "0123456789abcdef0123456789abcdef01234567"})
        (ctx / "index.html").write_text("prebuilt v1.7\n")
        dockerfile = (ctx / "Dockerfile").read_text().replace(
            "CMD [", "COPY index.html /app/src/\nCMD [")
        (ctx / "Dockerfile").write_text(dockerfile)
        ref = f"{registry.host}/lab/loon:v1.7"
        registry.push(ctx, ref)
        config = json.loads(site.deployment.config.read_text())
        config["deploymentSettings"]["image"] = ref
        site.deployment.config.write_text(json.dumps(config))

        result = site.deployment.run("-d", timeout=300, DOCKER_CONFIG=str(registry.docker_config))
        out = result.stdout + result.stderr
        assert result.returncode == 0, out
        assert site.get() == "prebuilt v1.7\n"
        out_log = (site.deployment.session() / "out.log").read_text()
        assert f"pulling {ref}" in out_log and "pull: " in out_log, out_log
        assert PASSWORD not in out_log and PASSWORD not in out
        # Pulled by the supervisor (the engine names its client), with the password.
        reg_log = registry.log.read_text()
        assert '"GET /v2/lab/loon/blobs/' in reg_log and "UpstreamClient(Python" in reg_log
        assert f"auth.user.name={USER}" in reg_log
        listing = site.loon("versions")
        assert listing.returncode == 0, listing.stderr
        row = next(line for line in listing.stdout.splitlines() if line.startswith("*"))
        assert f"pulled {ref}" in row and "0123456789ab" in row and "deployed" in row, \
            listing.stdout
        stored = site.versions_file()
        assert stored["versions"][0]["source"] == "pull"
        assert stored["versions"][0]["reference"] == ref

        # An image that breaks the contract is refused after the pull; nothing is stopped.
        bad = tmp_path / "bad"
        write_context(bad, {"web": "sleep 1000"}, labels=False)
        bad_ref = f"{registry.host}/lab/loon:v1.8"
        registry.push(bad, bad_ref)
        config["deploymentSettings"]["image"] = bad_ref
        site.deployment.config.write_text(json.dumps(config))
        again = site.deployment.run("-d", "--replace", timeout=300,
                                    DOCKER_CONFIG=str(registry.docker_config))
        assert again.returncode == 1
        assert "has no 'org.loon.services' label" in again.stdout + again.stderr
        assert "keeps serving" in again.stdout + again.stderr
        assert site.get() == "prebuilt v1.7\n"
    finally:
        site.cleanup()
        subprocess.run(["docker", "rmi", f"{registry.host}/lab/loon:v1.7",
                        f"{registry.host}/lab/loon:v1.8"], capture_output=True)
