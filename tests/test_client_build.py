"""docker-common/build/client.sh follows the client's lockfile: a yarn.lock is installed with
yarn --frozen-lockfile, and a locked version the registry cannot give fails the build naming
that package, or with LOON_CLIENT_REQUIRED=false leaves the client out and keeps the reason
(run in a debian:bookworm-slim container on the registry, as the build does)."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from tests.conftest import ROOT

LOCK = '''# yarn lockfile v1


"@loon-supervisor-test/never-published@9.9.9":
  version "9.9.9"
  resolved "https://registry.yarnpkg.com/@loon-supervisor-test/never-published/-/never-published-9.9.9.tgz#0000000000000000000000000000000000000000"
'''


@pytest.mark.engine
def test_a_locked_version_the_registry_lacks_fails_naming_it(tmp_path: Path, engine: None) -> None:
    client = tmp_path / "src" / "apps" / "client"
    client.mkdir(parents=True)
    (client / "package.json").write_text(
        '{"name": "c", "version": "1.0.0", "private": true, "scripts": {"build": "echo b"}, '
        '"dependencies": {"@loon-supervisor-test/never-published": "9.9.9"}}')
    (client / "yarn.lock").write_text(LOCK)
    ca = Path("/etc/ssl/certs/ca-certificates.crt")
    script = ("apt-get -o Acquire::https::CAInfo=/tmp/host-ca.crt update -qq && "
              "apt-get install -y -qq --no-install-recommends python3 ca-certificates "
              ">/dev/null && cp /tmp/host-ca.crt /usr/local/share/ca-certificates/host.crt && "
              "update-ca-certificates >/dev/null && { bash /client.sh; echo \"required rc=$?\"; "
              "LOON_CLIENT_REQUIRED=false bash /client.sh; echo \"optional rc=$?\"; "
              "echo \"absent: $(cat /out/meta/client-absent.txt)\"; "
              "echo \"client files: $(ls -A /out/client | wc -l)\"; }")
    result = subprocess.run(
        ["docker", "run", "--rm", "--name", f"loon-test-{uuid.uuid4().hex[:8]}",
         "--network", "host", "-v", f"{tmp_path / 'src'}:/src:ro",
         "-v", f"{ca}:/tmp/host-ca.crt:ro",
         "-v", f"{ROOT / 'docker-common' / 'build' / 'client.sh'}:/client.sh:ro",
         "debian:bookworm-slim", "bash", "-c", script],
        capture_output=True, text=True, timeout=900)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    assert "required rc=1" in out, out[-3000:]  # by default the build fails
    assert "install --frozen-lockfile" in out and "client build: yarn 1." in out, out[-3000:]
    assert "client build failed: the client's yarn lockfile pins a version the package " \
           "registry could not provide: @loon-supervisor-test/never-published@9.9.9" in out, \
        out[-3000:]
    # LOON_CLIENT_REQUIRED=false (deploymentSettings.buildArgs): the build goes on without the
    # client, says so, and keeps the reason for the status page and `loon doctor`.
    assert "optional rc=0" in out, out[-3000:]
    assert "WARNING: LOON_CLIENT_REQUIRED=false: the image is built WITHOUT the Loon client" in out
    assert "absent: client build failed: the client's yarn lockfile pins a version the " \
           "package registry could not provide: @loon-supervisor-test/never-published@9.9.9" \
        in out, out[-3000:]
    assert "client files: 0" in out
