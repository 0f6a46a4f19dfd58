"""Issue 18: bad input at every edge ends in a correct result or exit 2 with one sentence,
never a traceback and never a partial write. Engine-free: in-process verbs and a few
subprocesses of the real front ends."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from loon_supervisor.config.formats import split_base_url
from loon_supervisor.spec.envfile import read_env_file, write_env_file
from loon_supervisor.verbs import config as config_verb
from loon_supervisor.verbs import validate as validate_verb
from tests.certs import make_pair
from tests.conftest import ROOT, base_config, write_config
from tests.forked_loon import FORKED, needs_real_process


def snapshot(*dirs: Path) -> dict[str, bytes | None]:
    """Every file and directory under ``dirs`` (contents of files)."""
    out: dict[str, bytes | None] = {}
    for d in dirs:
        for p in sorted(d.rglob("*")) if d.exists() else []:
            out[str(p)] = p.read_bytes() if p.is_file() else None
    return out


def validate(config: Path, env_file: str = ".env") -> int:
    return validate_verb.run(validate_verb.ValidateOptions(config, env_file))


def loon(*args: str, cwd: Path, env: dict[str, str] | None = None,
         stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.upper().startswith("LOON_")}
    base["LOON_PROJECT_ROOT"] = str(cwd / "project")
    base.update(env or {})
    if stdin is None and not needs_real_process(base):  # forked from a pre-imported loon
        return FORKED.run(list(args), cwd=cwd, env=base, timeout=60, memory_cap=None)
    return subprocess.run([sys.executable, "-m", "loon_supervisor", *args], cwd=cwd, env=base,
                          capture_output=True, text=stdin is None, input=stdin, timeout=60)


@pytest.fixture
def config(tmp_path: Path, project: Path) -> Path:
    return write_config(tmp_path / "config.json", base_config(tmp_path / "data"))


# --- state damaged -----------------------------------------------------------------------

@pytest.mark.parametrize("name", ["deploy-server.py", "requirements.txt", ".gitkeep",
                                  ".secret-key.loon", ".venv", ".env\nX=1", "../x.env",
                                  "a/b.env", "", ".env.secrets", "state.loon.json",
                                  ".validated..env.json", ".env.tmp"])
def test_env_file_name_confined(config: Path, project: Path, name: str,
                                capsys: pytest.CaptureFixture[str]) -> None:
    before = snapshot(project, config.parent)
    assert validate(config, name) == 2
    err = capsys.readouterr().err
    assert "--env-file" in err and "Traceback" not in err and len(err.splitlines()) == 2
    assert snapshot(project, config.parent) == before


@pytest.mark.parametrize("name", [".env", ".env.production", "production.env"])
def test_env_file_good_names(config: Path, project: Path, name: str) -> None:
    assert validate(config, name) == 0
    assert (project / ".build-files" / name).is_file()


def test_env_file_that_is_a_directory_leaves_no_temp(config: Path, project: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    (project / ".build-files" / ".env.d").mkdir(parents=True)
    assert validate(config, ".env.d") == 2
    assert "is a directory" in capsys.readouterr().err
    assert [p.name for p in (project / ".build-files").iterdir()] == [".env.d"]


def test_concurrent_env_writers_never_clash(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    target = tmp_path / ".env"
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: write_env_file(target, {"N": str(i)}), range(64)))
    assert read_env_file(target)["N"] in {str(i) for i in range(64)}
    assert [p.name for p in tmp_path.iterdir()] == [".env"]


@pytest.mark.parametrize("content,what", [("", "is empty"), ("short\n", "holds a key of 5"),
                                          ("a" * 40 + "\n" + "b" * 40, "more than one line")])
def test_bad_secret_key_names_the_file(config: Path, project: Path, content: str, what: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    key = project / ".build-files" / ".secret-key.loon"
    key.parent.mkdir(parents=True)
    key.write_text(content)
    assert validate(config) == 2
    err = capsys.readouterr().err
    assert str(key) in err and what in err
    assert not (project / ".build-files" / ".env").exists()


def test_secret_key_kept_and_validated(config: Path, project: Path) -> None:
    assert validate(config) == 0
    key = (project / ".build-files" / ".secret-key.loon").read_text().strip()
    assert read_env_file(project / ".build-files" / ".env")["SECRET_KEY"] == key
    (project / ".build-files" / ".secret-key.loon").write_text("")
    assert validate(config) == 2  # the stamp's fast path sees the emptied key too


@pytest.mark.parametrize("mysql,why", [
    ("/", "system directory"), ("/etc", "system directory"), ("/usr/bin/x", "inside a system"),
    ("/var", "system directory"), ("/proc/1", "inside a system"),
    ("/srv/../etc", "'..'"), ("MINIO", "overlaps"), ("MINIO/sub", "overlaps"),
])
def test_dangerous_volumes_refused(tmp_path: Path, project: Path, mysql: str, why: str,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    data = base_config(tmp_path / "data")
    minio = data["minioSettings"]["sourceVolumeLocation"]
    data["mySqlSettings"]["sourceVolumeLocation"] = mysql.replace("MINIO", minio)
    config = write_config(tmp_path / "c.json", data)
    before = snapshot(project, tmp_path)
    assert validate(config) == 2
    err = capsys.readouterr().err
    assert "mySqlSettings.sourceVolumeLocation" in err and why in err
    assert snapshot(project, tmp_path) == before


def test_volume_containing_the_project_refused(tmp_path: Path, project: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    data = base_config(tmp_path / "data")
    data["mySqlSettings"]["sourceVolumeLocation"] = str(tmp_path)
    assert validate(write_config(tmp_path / "c.json", data)) == 2
    assert "checkout" in capsys.readouterr().err


def test_validate_creates_no_directories(config: Path, project: Path) -> None:
    assert validate(config) == 0
    assert not (config.parent / "data").exists()


def test_build_py_e_with_D_is_a_usage_error(tmp_path: Path) -> None:
    for flags in (["-eD"], ["-De"], ["-D", "-d"]):
        r = subprocess.run([sys.executable, str(ROOT / "build.py"), *flags], cwd=tmp_path,
                           capture_output=True, text=True)
        assert r.returncode == 2 and "-D/--down cannot be combined" in r.stderr


# --- tracebacks instead of exit 2 ---------------------------------------------------------

def test_10000_deep_json(tmp_path: Path, project: Path,
                         capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "deep.json"
    path.write_text('{"a":' * 10000 + "1" + "}" * 10000)
    assert validate(path) == 2
    assert "nests deeper" in capsys.readouterr().err


@pytest.mark.parametrize("env,var", [
    ({"LOON_DEPLOYMENTSETTINGS__PUBLISHEDPORTS": "not-json"},
     "LOON_DEPLOYMENTSETTINGS__PUBLISHEDPORTS"),
    ({"LOON_MYSQLSETTINGS": "garbage", "LOON_X__Y": "1"}, "LOON_MYSQLSETTINGS"),
    ({"LOON_GENERALSETTINGS__USEHTTP": "yes"}, "LOON_GENERALSETTINGS__USEHTTP"),
    ({"LOON_GENERALSETTINGS__USEHTTP": "1"}, "LOON_GENERALSETTINGS__USEHTTP"),
    ({"LOON_GENERALSETTINGS__USEHTTP": "off"}, "LOON_GENERALSETTINGS__USEHTTP"),
    ({"LOON_DEPLOYMENTSETTINGS__STOPTIMEOUT": "soon"}, "LOON_DEPLOYMENTSETTINGS__STOPTIMEOUT"),
    ({"LOON_GENERALSETTINGS__BASEURL": "a b"}, "LOON_GENERALSETTINGS__BASEURL"),
    ({"LOON_DEPLOYMENTSETTINGS__STOPTIMEOUT": "9999"}, "LOON_DEPLOYMENTSETTINGS__STOPTIMEOUT"),
])
def test_override_errors_name_the_variable(config: Path, project: Path,
                                           monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str],
                                           env: dict[str, str], var: str) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert validate(config) == 2
    err = capsys.readouterr().err
    assert var in err and "Traceback" not in err and "SettingsError" not in err


def test_section_variable_applies_alone_and_null_is_null(config: Path, project: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    monkeypatch.setenv("LOON_MYSQLSETTINGS", '{"databaseName": "fromenv"}')
    monkeypatch.setenv("LOON_DEPLOYMENTSETTINGS__MINIOSOURCEURL", "null")
    assert config_verb.run(config_verb.ConfigOptions(config)) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["mySqlSettings"]["databaseName"] == "fromenv"
    assert shown["mySqlSettings"]["databaseUser"] == "user"
    assert shown["deploymentSettings"]["minioSourceUrl"] is None


def test_unknown_loon_variables_warn_with_did_you_mean(config: Path, project: Path,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    monkeypatch.setenv("LOON_MYSQLSETINGS__DATABASENAME", "x")
    monkeypatch.setenv("LOON_FOO", "1")
    assert validate(config) == 0
    out = capsys.readouterr().out
    assert "LOON_MYSQLSETINGS__DATABASENAME matches no setting" in out
    assert "did you mean LOON_MYSQLSETTINGS__DATABASENAME?" in out
    assert "LOON_FOO matches no setting" in out


def test_schema_and_reference_write_edges(tmp_path: Path) -> None:
    r = loon("schema", "-o", "/nonexistent/x.json", cwd=tmp_path)
    assert r.returncode == 2 and "/nonexistent/x.json" in r.stderr and "Traceback" not in r.stderr
    r = loon("config-reference", "--write", str(tmp_path / "missing.md"), cwd=tmp_path)
    assert r.returncode == 2 and "missing.md" in r.stderr
    (tmp_path / "plain.md").write_text("no markers\n")
    r = loon("config-reference", "--write", str(tmp_path / "plain.md"), cwd=tmp_path)
    assert r.returncode == 2 and "markers" in r.stderr
    assert (tmp_path / "plain.md").read_text() == "no markers\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.md"]


# --- silently wrong ------------------------------------------------------------------------

def test_config_from_a_pipe_is_read_once(tmp_path: Path) -> None:
    text = json.dumps(base_config(tmp_path / "data")).encode()
    for _ in range(2):
        r = loon("validate", "-c", "/dev/stdin", cwd=tmp_path, stdin=text)
        assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("value,host", [
    ("localhost", "localhost"), ("loon.example.org:8443", "loon.example.org"),
    ("[::1]", "[::1]"), ("[2001:db8::1]:8443", "[2001:db8::1]"), ("10.0.0.1:80", "10.0.0.1"),
])
def test_base_url_host(config: Path, project: Path, value: str, host: str) -> None:
    data = json.loads(config.read_text())
    data["generalSettings"]["baseUrl"] = value
    write_config(config, data)
    assert validate(config) == 0
    env = read_env_file(project / ".build-files" / ".env")
    assert env["ALLOWED_HOST"] == host and env["VITE_SERVER_URL"] == f"{value}/data"


@pytest.mark.parametrize("value", ["::1", "user:pw@host", "host?x=1", "host#frag",
                                   "host:notaport", "host:99999", "host:0", "[::1",
                                   "[nothex]", "[::1]x", "http://host", "host/path", "-bad-"])
def test_base_url_refused(config: Path, project: Path, value: str,
                          capsys: pytest.CaptureFixture[str]) -> None:
    data = json.loads(config.read_text())
    data["generalSettings"]["baseUrl"] = value
    write_config(config, data)
    assert validate(config) == 2
    assert "generalSettings.baseUrl" in capsys.readouterr().err
    with pytest.raises(ValueError):
        split_base_url(value)


def test_duplicate_keys_are_errors(tmp_path: Path, project: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    data = base_config(tmp_path / "data")
    text = json.dumps(data)
    text = text.replace('"databaseName": "loon"', '"databaseName": "a", "databaseName": "b"')
    text = text[:-1] + ', "mySqlSettings": {}}'
    (tmp_path / "c.json").write_text(text)
    assert validate(tmp_path / "c.json") == 2
    err = capsys.readouterr().err
    assert "mySqlSettings: appears more than once" in err
    assert "mySqlSettings.databaseName: appears more than once" in err


@pytest.mark.parametrize("text,hint", [
    ('\ufeff{"a": 1}', "without BOM"),
    ('{"a": 1,}', "trailing comma"),
    ('{"a": [1, 2,]}', "trailing comma"),
    ('{\n  // note\n  "a": 1}', "no comments"),
    ("{'a': 1}", "double quotes"),
    ('{"a": 1} {"b": 2}', "exactly one JSON object"),
    ("[1, 2]", "top level must be a JSON object"),
    ("", "is empty"),
])
def test_syntax_hints(tmp_path: Path, project: Path, text: str, hint: str,
                      capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "c.json").write_bytes(text.encode("utf-8"))
    assert validate(tmp_path / "c.json") == 2
    err = capsys.readouterr().err
    assert hint in err and "Expecting" not in err and "codec" not in err


def test_schema_key_hint_and_no_pydantic_jargon(config: Path, project: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    data = json.loads(config.read_text())
    data["$shema"] = "./config.schema.json"
    data["deploymentSettings"] = "x"
    data["generalSettings"]["useHttp"] = "yes"
    write_config(config, data)
    assert validate(config) == 2
    err = capsys.readouterr().err
    assert "did you mean '$schema'?" in err and "'schema_'" not in err
    assert "instance of" not in err and "deploymentsettings" not in err
    assert "deploymentSettings: has the wrong JSON type (a string)" in err


@pytest.mark.parametrize("tag,ok", [("Loon:Latest", False), ("loon:latest", True),
                                    ("registry.local:5000/team/loon:v1.2", True),
                                    ("loon:", False), ("UPPER", False), ("a b", False)])
def test_image_tag_reference(config: Path, project: Path, tag: str, ok: bool) -> None:
    data = json.loads(config.read_text())
    data["deploymentSettings"] = {"imageTag": tag}
    write_config(config, data)
    assert validate(config) == (0 if ok else 2)


def _tls_config(tmp_path: Path) -> tuple[Path, Path]:
    data = base_config(tmp_path / "data")
    data["generalSettings"]["useHttp"] = False
    ssl = tmp_path / "ssl"
    ssl.mkdir(exist_ok=True)
    data["nginxSettings"] = {"sourceVolumeLocation": str(ssl), "certFileLocation": "c.pem",
                             "keyFileLocation": "k.pem"}
    return write_config(tmp_path / "c.json", data), ssl


def test_certificates_parsed(tmp_path: Path, project: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    config, ssl = _tls_config(tmp_path)
    make_pair(ssl / "c.pem", ssl / "k.pem", days=90)
    assert validate(config) == 0
    assert "valid until" in capsys.readouterr().out
    cases = {
        "empty": lambda: (ssl / "c.pem").write_text(""),
        "not PEM": lambda: (ssl / "c.pem").write_text("hello"),
        "swapped": lambda: ((ssl / "x").write_bytes((ssl / "c.pem").read_bytes()),
                            (ssl / "c.pem").write_bytes((ssl / "k.pem").read_bytes()),
                            (ssl / "k.pem").write_bytes((ssl / "x").read_bytes())),
        "other key": lambda: make_pair(tmp_path / "o.pem", ssl / "k.pem"),
        "expired": lambda: make_pair(ssl / "c.pem", ssl / "k.pem", days=-1),
    }
    expect = {"empty": "not a PEM certificate", "not PEM": "not a PEM certificate",
              "swapped": "not a PEM certificate", "other key": "does not belong",
              "expired": "expired on"}
    for what, damage in cases.items():
        make_pair(ssl / "c.pem", ssl / "k.pem")
        damage()
        assert validate(config) == 2, what
        assert expect[what] in capsys.readouterr().err, what


def test_extra_ca_must_be_pem(config: Path, project: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    data = json.loads(config.read_text())
    (config.parent / "ca.pem").write_text("not a certificate")
    data["deploymentSettings"] = {"extraCaCertificate": str(config.parent / "ca.pem")}
    write_config(config, data)
    assert validate(config) == 2
    assert "deploymentSettings.extraCaCertificate" in capsys.readouterr().err


# --- CLI habits ------------------------------------------------------------------------------

def test_logs_flag_edges(tmp_path: Path) -> None:
    for args, text in ((["-n", "-5"], "--lines/--tail"), (["--tail", "x"], "--lines/--tail"),
                       (["--since", "10m"], "--since"), (["-t"], "-f")):
        r = loon("logs", *args, cwd=tmp_path)
        assert r.returncode == 2 and text in r.stderr and "Traceback" not in r.stderr


def test_bare_loon_version_and_help(tmp_path: Path) -> None:
    r = loon(cwd=tmp_path)
    assert r.returncode == 0 and "Usage: loon" in r.stdout and "--install-completion" in r.stdout
    r = loon("--version", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.startswith("loon ")
    r = loon("up", "--help", cwd=tmp_path)
    assert "<bool>" not in r.stdout and "-v, --verbose" in r.stdout


def test_config_verb_masks_secrets_and_writes_nothing(tmp_path: Path) -> None:
    data = base_config(tmp_path / "data")
    write_config(tmp_path / "c.json", data)
    before = snapshot(tmp_path)
    r = loon("config", "-c", str(tmp_path / "c.json"), cwd=tmp_path,
             env={"LOON_MYSQLSETTINGS__DATABASEPASSWORD": "from-env-secret"})
    assert r.returncode == 0, r.stderr
    shown = json.loads(r.stdout)
    assert shown["mySqlSettings"]["databasePassword"] == "**********"
    for secret in ("from-env-secret", "root_pass", "minioadmin"):
        assert secret not in r.stdout + r.stderr
    assert snapshot(tmp_path) == before


def test_shell_completion_completes_verbs(tmp_path: Path) -> None:
    r = loon(cwd=tmp_path, env={"_LOON_COMPLETE": "complete_bash", "COMP_WORDS": "loon resta",
                                "COMP_CWORD": "1"})
    assert r.returncode == 0 and r.stdout.split() == ["restart"]


def test_messages_speak_json_not_pydantic(config: Path, project: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    data = json.loads(config.read_text())
    data["generalSettings"]["environment"] = "staging"
    data["deploymentSettings"] = {"stopTimeout": -1, "publishedPorts": []}
    write_config(config, data)
    assert validate(config) == 2
    err = capsys.readouterr().err.lower()
    assert "must be 'production' or 'local'" in err and "must be greater than or equal to 0" in err
    for jargon in ("input should", "instance of", "pydantic", "dict_type", "model_type"):
        assert jargon not in err
