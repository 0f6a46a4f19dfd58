"""The up flow against a second, private dockerd reached over tcp://127.0.0.1 with TLS client
certificates, as an operator deploys to a lab server with DOCKER_HOST + DOCKER_TLS_VERIFY."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.engine_helpers import SIGINT, container_files, containers_named, stop_with, wait_until
from tests.remote.tls_engine import TlsEngine

pytestmark = pytest.mark.usefixtures("engine")


@pytest.fixture
def on_tls(tls_engine: TlsEngine, monkeypatch: pytest.MonkeyPatch) -> TlsEngine:
    """Point this process (and so build.py and the test helpers) at the TLS engine."""
    for key, value in tls_engine.client_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    return tls_engine


def test_up_flow_over_tls_byte_identical_and_ctrl_c(deploy, on_tls: TlsEngine) -> None:  # type: ignore[no-untyped-def]
    services = {f"s{i}": f'seq 1 20000 | sed "s/^/s{i} line /"; exec sleep 100000'
                for i in range(3)}
    d = deploy(services)
    proc = d.start()
    d.wait_out_log("Loon is up")
    session = d.session()
    out_log = (session / "out.log").read_text()
    assert f"engine: {on_tls.tcp} with TLS" in out_log
    assert "mysql-data on the engine's machine" in out_log, out_log
    expected = {f"s{i}": "".join(f"s{i} line {n}\n" for n in range(1, 20001)).encode()
                for i in range(3)}
    wait_until(lambda: all((session / f"{n}.log").exists() and
                           (session / f"{n}.log").stat().st_size == len(b)
                           for n, b in expected.items()), timeout=60)
    inside = container_files(d.name)
    code, out = stop_with(proc, SIGINT)
    assert code == 130, out
    for name, data in expected.items():
        assert (session / f"{name}.log").read_bytes() == data == inside[f"{name}.log"], name
    assert containers_named(d.name) == []
    shared = subprocess.run(["docker", "-H", "unix:///var/run/docker.sock", "ps", "-aq",
                             "--filter", f"name={d.name}"], capture_output=True, text=True)
    assert shared.stdout.strip() == "", "the container went to the shared engine"


def test_wrong_client_certificate_is_one_sentence_exit_1(deploy, on_tls: TlsEngine,  # type: ignore[no-untyped-def]
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    d = deploy({"a": "exec sleep 100000"})
    monkeypatch.setenv("DOCKER_CERT_PATH", str(on_tls.certs / "bad"))
    result = d.run(timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    text = (result.stdout + result.stderr).strip()
    assert "Traceback" not in text
    assert "TLS" in text and "DOCKER_CERT_PATH" in text, text
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].count(". ") == 0, text
    # Validation ran with a remote engine: no volume directory was made on this machine.
    assert not (d.root / "data").exists(), "validation created engine-host paths locally"


def _write_context(config_dir: Path, name: str, eng: TlsEngine) -> None:
    """The Docker CLI's context store, as `docker context create` writes it."""
    digest = hashlib.sha256(name.encode()).hexdigest()
    meta = config_dir / "contexts" / "meta" / digest
    meta.mkdir(parents=True)
    (meta / "meta.json").write_text(json.dumps({
        "Name": name, "Metadata": {},
        "Endpoints": {"docker": {"Host": eng.tcp, "SkipTLSVerify": False}}}))
    tls = config_dir / "contexts" / "tls" / digest / "docker"
    tls.mkdir(parents=True)
    for f in ("ca.pem", "cert.pem", "key.pem"):
        (tls / f).write_bytes((eng.client / f).read_bytes())


@pytest.mark.parametrize("how", ["DOCKER_CONTEXT", "--context"])
def test_docker_context_is_used(deploy, tls_engine: TlsEngine, tmp_path: Path,  # type: ignore[no-untyped-def]
                                monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    home = tmp_path / "home"
    _write_context(home / ".docker", "lab", tls_engine)
    for key in ("DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_CONFIG"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(home))  # the test helpers' aiodocker reads ~/.docker too
    monkeypatch.setenv("DOCKER_CONTEXT", "lab")
    # The docker CLI agrees that this context reaches the private engine.
    assert subprocess.run(["docker", "info"], capture_output=True, env=os.environ.copy()
                          ).returncode == 0
    d = deploy({"a": "echo from-context; exec sleep 100000"})
    if how == "--context":  # the flag wins over DOCKER_HOST, as with `docker --context`
        proc = d.start("--context", "lab", DOCKER_CONTEXT="",
                       DOCKER_HOST="unix:///var/run/docker.sock")
    else:
        proc = d.start()
    d.wait_out_log("Loon is up")
    session = d.session()
    assert "engine: context lab" in (session / "out.log").read_text()
    wait_until(lambda: (session / "a.log").exists()
               and (session / "a.log").read_bytes() == b"from-context\n", timeout=30)
    assert containers_named(d.name), "the container is not on the context's engine"
    code, out = stop_with(proc, SIGINT)
    assert code == 130, out
    assert containers_named(d.name) == []
