"""Pure logic: which engine is chosen, how it is named, what the engine-host helper reports,
and that validation leaves engine-host paths alone when the engine is remote."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from loon_supervisor.config.rules import check_rules, ensure_volume_dirs
from loon_supervisor.engine.endpoint import Endpoint, resolve_endpoint
from loon_supervisor.engine.remote_paths import helper_script, interpret
from loon_supervisor.errors import EngineError


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key in ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "cfg"))
    return tmp_path / "cfg"


def store(cfg: Path, name: str, host: str, current: bool = False) -> None:
    meta = cfg / "contexts" / "meta" / hashlib.sha256(name.encode()).hexdigest()
    meta.mkdir(parents=True)
    (meta / "meta.json").write_text(json.dumps({"Name": name,
                                                "Endpoints": {"docker": {"Host": host}}}))
    if current:
        (cfg / "config.json").write_text(json.dumps({"currentContext": name}))


def test_default_is_the_local_socket(clean_env: Path) -> None:
    e = resolve_endpoint()
    assert e == Endpoint("unix:///var/run/docker.sock") and not e.is_remote


def test_order_flag_then_docker_host_then_docker_context_then_current(
        clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store(clean_env, "cur", "ssh://me@current", current=True)
    store(clean_env, "env", "ssh://me@env")
    store(clean_env, "flag", "tcp://flag:2376")
    assert resolve_endpoint().host == "ssh://me@current"
    monkeypatch.setenv("DOCKER_CONTEXT", "env")
    assert resolve_endpoint().context == "env"
    monkeypatch.setenv("DOCKER_HOST", "tcp://host:2375")
    assert resolve_endpoint() == Endpoint("tcp://host:2375")
    assert resolve_endpoint("flag").host == "tcp://flag:2376"
    monkeypatch.setenv("DOCKER_CONTEXT", "default")
    monkeypatch.delenv("DOCKER_HOST")
    assert resolve_endpoint().host == "unix:///var/run/docker.sock"


def test_missing_context_is_one_clear_error(clean_env: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_CONTEXT", "nope")
    with pytest.raises(EngineError, match="context 'nope' is not in .*docker context create"):
        resolve_endpoint()


def test_describe_hides_passwords_and_names_tls() -> None:
    assert Endpoint("ssh://u:secret@h").describe() == "ssh://u@h"
    assert Endpoint("tcp://h:1", tls=True).describe() == "tcp://h:1 with TLS"
    assert Endpoint("ssh://h", context="lab").describe() == "context lab (ssh://h)"
    assert Endpoint("ssh://h").is_remote and Endpoint("tcp://127.0.0.1:1").is_remote


def test_helper_output_becomes_messages_and_problems() -> None:
    script = helper_script(["/srv/a", "/srv/b c"], ["/etc/x/cert.pem"])
    assert "'/loon-paths/1/b c'" in script and "/loon-paths/f0/cert.pem" in script
    dirs = [("m.src", "/srv/a"), ("n.src", "/srv/b c"), ("o.src", "/srv/d")]
    said, problems = interpret("d0 created\nd1 notdir\nf0 missing\n", dirs,
                               [("nginx.cert", "/etc/x/cert.pem")], "ssh://srv")
    assert said == ["created /srv/a on the engine's machine (ssh://srv) (m.src)"]
    assert [p.path for p in problems] == ["n.src", "o.src", "nginx.cert"]


def test_remote_engine_validation_makes_no_local_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "ssh://root@lab-server")
    target = tmp_path / "srv" / "mysql"
    assert ensure_volume_dirs([("mySqlSettings.sourceVolumeLocation", str(target))]) == ([], [])
    assert not target.parent.exists()
    data = {"generalSettings": {"environment": "local", "useHttp": False},
            "localDataSettings": {"sourceVolumeLocation": "/srv/not-here"},
            "nginxSettings": {"sourceVolumeLocation": "/srv/certs", "certFileLocation": "c.pem",
                              "keyFileLocation": "k.pem"}}
    assert check_rules(data) == []
    assert len(check_rules(data, engine_local=True)) == 3
