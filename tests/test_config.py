from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loon_supervisor.config import load_config
from loon_supervisor.config.load import env_overrides
from loon_supervisor.errors import ConfigError
from tests.certs import make_pair
from tests.conftest import base_config, write_config


def problems(path: Path, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, environ or {})
    assert info.value.exit_code == 2
    return [str(p) for p in info.value.problems]


def test_valid_minimal(tmp_path: Path) -> None:
    cfg = load_config(write_config(tmp_path / "c.json", base_config(tmp_path)), {})
    assert cfg.url == "http://localhost"
    assert cfg.deploymentSettings.containerName == "loon"
    assert "user_pass" not in repr(cfg)


def test_every_problem_at_once(tmp_path: Path) -> None:
    data = base_config(tmp_path)
    data["generalSettings"].update(useHttp="yes", baseUrl="https://x/", environment="prod")
    data["mySqlSettings"]["databasePassword"] = 1234
    data["mySqlSettings"]["sourceVolumeLocation"] = "relative/"
    data["minioSettings"]["minioStorageAccessKey"] = "abc"
    data["minioSettings"]["minioStorageSecretKey"] = "1234567"
    data["mySqlSetings"] = {}
    found = problems(write_config(tmp_path / "c.json", data))
    joined = "\n".join(found)
    for needle in ["generalSettings.useHttp: has the wrong JSON type",
                   "generalSettings.baseUrl: must not contain a scheme",
                   "generalSettings.environment:",
                   "mySqlSettings.databasePassword: has the wrong JSON type",
                   "mySqlSettings.sourceVolumeLocation: must be an absolute path",
                   "minioSettings.minioStorageAccessKey: must be at least 4 characters",
                   "minioSettings.minioStorageSecretKey: must be at least 8 characters",
                   "mySqlSetings: unknown key — did you mean 'mySqlSettings'?"]:
        assert needle in joined, joined
    assert all(" — " in p for p in found)


@pytest.mark.parametrize("value,ok", [("localhost", True), ("loon.example.org", True),
                                      ("host:8080", True), ("http://x", False),
                                      ("/x", False), ("x/", False), ("a b", False)])
def test_base_url(tmp_path: Path, value: str, ok: bool) -> None:
    data = base_config(tmp_path)
    data["generalSettings"]["baseUrl"] = value
    path = write_config(tmp_path / "c.json", data)
    if ok:
        load_config(path, {})
    else:
        assert any(p.startswith("generalSettings.baseUrl:") for p in problems(path))


@pytest.mark.parametrize("value,ok", [("/data/x", True), ("/", False), ("data/x", False),
                                      ("/data/x/", False)])
def test_volume_paths(tmp_path: Path, value: str, ok: bool) -> None:
    data = base_config(tmp_path)
    data["mySqlSettings"]["sourceVolumeLocation"] = value
    path = write_config(tmp_path / "c.json", data)
    if ok:
        load_config(path, {})
    else:
        assert any(p.startswith("mySqlSettings.sourceVolumeLocation:") for p in problems(path))


def test_minio_key_lengths(tmp_path: Path) -> None:
    data = base_config(tmp_path)
    data["minioSettings"].update(minioStorageAccessKey="abcd", minioStorageSecretKey="12345678")
    load_config(write_config(tmp_path / "c.json", data), {})


def test_nginx_required_unless_http(tmp_path: Path) -> None:
    data = base_config(tmp_path)
    data["generalSettings"]["useHttp"] = False
    found = problems(write_config(tmp_path / "c.json", data))
    assert any(p.startswith("nginxSettings: is required because useHttp is false") for p in found)


def test_nginx_files_must_exist(tmp_path: Path) -> None:
    ssl = tmp_path / "ssl"
    (ssl / "certs").mkdir(parents=True)
    (ssl / "certs" / "localhost.crt").write_text("x")
    data = base_config(tmp_path)
    data["generalSettings"]["useHttp"] = False
    data["nginxSettings"] = {"sourceVolumeLocation": str(ssl), "targetVolumeLocation":
                             "/etc/nginx/ssl", "certFileLocation": "certs/localhost.crt",
                             "keyFileLocation": "private/localhost.key"}
    found = problems(write_config(tmp_path / "c.json", data))
    assert len(found) == 1 and found[0].startswith("nginxSettings.keyFileLocation:")
    make_pair(ssl / "certs" / "localhost.crt", ssl / "private" / "localhost.key")
    load_config(tmp_path / "c.json", {})


def test_minio_required_for_production(tmp_path: Path) -> None:
    data = base_config(tmp_path)
    del data["minioSettings"]
    assert any(p.startswith("minioSettings: is required")
               for p in problems(write_config(tmp_path / "c.json", data)))


def test_local_needs_local_data(tmp_path: Path) -> None:
    data = base_config(tmp_path)
    data["generalSettings"]["environment"] = "local"
    path = write_config(tmp_path / "c.json", data)
    assert any(p.startswith("localDataSettings: is required") for p in problems(path))
    (tmp_path / "local").mkdir()
    data["localDataSettings"] = {"sourceVolumeLocation": str(tmp_path / "local")}
    load_config(write_config(path, data), {})


def test_malformed_json_reports_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text('{\n  "generalSettings": {\n    "useHttp": true,,\n')
    found = problems(path)
    assert len(found) == 1 and ":3:" in found[0] and "line 3" in found[0]


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    found = problems(tmp_path / "nope.json")
    assert "file not found" in found[0] and str(tmp_path / "nope.json") in found[0]


def test_env_overrides_parse_per_field(tmp_path: Path) -> None:
    data = base_config(tmp_path)
    path = write_config(tmp_path / "c.json", data)
    cfg = load_config(path, {"LOON_MYSQLSETTINGS__DATABASEPASSWORD": "1234",
                             "loon_generalsettings__usehttp": "true",
                             "LOON_DEPLOYMENTSETTINGS__STOPTIMEOUT": "3",
                             "LOON_GENERALSETTINGS__USEHTTP": "true"})
    assert cfg.mySqlSettings.databasePassword.get_secret_value() == "1234"
    assert cfg.deploymentSettings.stopTimeout == 3


def test_env_override_bad_bool(tmp_path: Path) -> None:
    path = write_config(tmp_path / "c.json", base_config(tmp_path))
    found = problems(path, {"LOON_GENERALSETTINGS__USEHTTP": "maybe"})
    assert found == ["LOON_GENERALSETTINGS__USEHTTP: 'maybe' is not a boolean — set it "
                     "to true or false"]


def test_env_overrides_shape() -> None:
    assert env_overrides({"LOON_MYSQLSETTINGS__DATABASENAME": "007"}) == {
        "mySqlSettings": {"databaseName": "007"}}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6),
                                                                      children, max_size=3),
    max_leaves=8)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture],
          deadline=None)
@given(section=st.sampled_from(["generalSettings", "mySqlSettings", "minioSettings",
                                "nginxSettings", "localDataSettings", "deploymentSettings"]),
       key=st.text(max_size=25) | st.sampled_from(["useHttp", "baseUrl", "environment",
                                                   "databasePassword", "sourceVolumeLocation",
                                                   "publishedPorts", "stopTimeout",
                                                   "certFileLocation", "containerName"]),
       value=json_values, replace_section=st.booleans())
def test_arbitrary_values_never_traceback(tmp_path: Path, section: str, key: str, value: object,
                                          replace_section: bool) -> None:
    data = base_config(tmp_path)
    if replace_section:
        data[section] = value
    else:
        data.setdefault(section, {})[key] = value
    path = tmp_path / "h.json"
    path.write_text(json.dumps(data))
    try:
        load_config(path, {})
    except ConfigError as exc:
        assert exc.problems and all(" — " in str(p) for p in exc.problems)


def test_a_top_level_key_named_like_a_section_class_is_reported(tmp_path: Path) -> None:
    """Found by hypothesis in CI: {"Settings": null} crashed the problem listing."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"Settings": None}))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert any(p.path == "Settings" and "unknown key" in p.message
               for p in info.value.problems)


def test_a_top_level_key_that_looks_like_a_pydantic_marker_is_reported(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Found by the fuzz test: a key "function-" was dropped as a validator marker, and
    the unknown-key report crashed on an empty path."""
    from loon_supervisor.config.load import validate_data
    from loon_supervisor.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        validate_data({"function-": None}, tmp_path)
    assert any(p.path == "function-" for p in info.value.problems)
