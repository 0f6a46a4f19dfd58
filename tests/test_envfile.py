from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loon_supervisor.config import load_config
from loon_supervisor.errors import ConfigError
from loon_supervisor.spec.envfile import (
    compose_reads_differently,
    environment,
    quote,
    read_env_file,
    render,
    write_env_file,
)
from tests.conftest import base_config, write_config


def compose_value(line: str) -> str:
    """A port of compose-go's dotenv extractVarValue (quoted and unquoted values), as a
    second, independent reader; variable expansion is modelled as 'a $ changes the value'."""
    src = line.split("=", 1)[1]
    if src[:1] not in ("'", '"'):
        value = src.split("#")[0].rstrip()
        assert "$" not in value, "compose would interpolate"
        return value
    q = src[0]
    for i in range(1, len(src)):
        if src[i] != q or src[i - 1] == "\\":
            continue
        value = src[0:i].rstrip(q).lstrip(q)
        if q == '"':
            value = re.sub(r"\\(.)", lambda m: {"n": "\n", "r": "\r"}.get(m[1], m[0]), value)
            value = re.sub(r"\\([^$])", r"\1", value)
            assert "$" not in value, "compose would interpolate"
        return value
    raise AssertionError("unterminated quoted value")


AWKWARD = ["plain", "with space", "it's", 'say "hi"', "a#b", " #lead", "pa$word", "$HOME",
           "${HOME}", "a=b=c", "back\\slash", "tab\there", "ünïcødé", "", "'", "x'y\\z",
           "trail ", "C:\\path\\", "it's\\"]


@pytest.mark.parametrize("value", AWKWARD)
def test_round_trip_through_both_readers(tmp_path: Path, value: str) -> None:
    path = write_env_file(tmp_path / ".env", {"V": value, "AFTER": "x"})
    assert read_env_file(path) == {"V": value, "AFTER": "x"}
    line = path.read_text().splitlines()[1]
    assert compose_value(line) == value


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "x\0y"])
def test_unrepresentable_values_are_rejected(value: str) -> None:
    with pytest.raises(ValueError):
        quote("V", value)
    with pytest.raises(ConfigError) as info:
        render({"DATABASE_PASSWORD": value})
    assert str(info.value.problems[0]).startswith("mySqlSettings.databasePassword")


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=20))
def test_any_value_round_trips_or_is_rejected(value: str) -> None:
    try:
        line = quote("V", value)
    except ValueError:
        assert any(c in value for c in "\n\r\0")
        return
    from io import StringIO

    from dotenv import dotenv_values
    assert dotenv_values(stream=StringIO(line + "\n"), interpolate=False)["V"] == value
    if not compose_reads_differently(value):
        assert compose_value(line) == value


def test_file_mode_and_order(tmp_path: Path, project: Path) -> None:
    cfg = load_config(write_config(tmp_path / "c.json", base_config(tmp_path)), {})
    env = environment(cfg, "k" * 20)
    path = write_env_file(tmp_path / ".env", env)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    names = [line.split("=")[0] for line in path.read_text().splitlines()[1:]]
    assert names == list(env)
    for needed in ["DATABASE_NAME", "DATABASE_USER", "DATABASE_PASSWORD", "DATABASE_ROOT_PASSWORD",
                   "DATABASE_HOST", "DATABASE_PORT", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND",
                   "MINIO_STORAGE_ACCESS_KEY", "MINIO_STORAGE_SECRET_KEY", "MINIO_STORAGE_ENDPOINT",
                   "MINIO_STORAGE_MEDIA_BUCKET_NAME", "MINIO_STORAGE_STATIC_BUCKET_NAME",
                   "MINIO_STORAGE_MEDIA_URL", "MINIO_STORAGE_STATIC_URL",
                   "MINIO_BROWSER_REDIRECT_URL", "MINIO_ENABLED", "USE_HTTP", "VITE_ENVIRONMENT",
                   "VITE_SERVER_URL", "SSL_CERT_FILE", "SSL_KEY_FILE",
                   "SSL_TARGET_MOUNTED_DIRECTORY", "LOCAL_DATA_VOLUME_LOCATION", "ALLOWED_HOST",
                   "SECRET_KEY"]:
        assert needed in env
    assert read_env_file(path) == env


def test_secret_key_is_random_and_stable(project: Path) -> None:
    from loon_supervisor.spec.envfile import secret_key
    a = secret_key(project / ".build-files", "one")
    assert a == secret_key(project / ".build-files", "one")
    assert a != secret_key(project / ".build-files", "two")
    assert len(a) >= 40
    mode = stat.S_IMODE(os.stat(project / ".build-files" / ".secret-key.one").st_mode)
    assert mode == 0o600


def test_debug_is_off_unless_configured(tmp_path: Path, project: Path) -> None:
    """Loon's settings default DEBUG to True: the env file must always say it."""
    cfg = load_config(write_config(tmp_path / "c.json", base_config(tmp_path)), {})
    assert environment(cfg, "k" * 20)["DEBUG"] == "false"
    cfg.deploymentSettings.djangoDebug = True
    assert environment(cfg, "k" * 20)["DEBUG"] == "true"


@pytest.mark.parametrize("use_http", [True, False])
def test_minio_urls_carry_no_scheme(tmp_path: Path, project: Path, use_http: bool) -> None:
    """Loon's settings.py prepends the site's scheme itself
    (``MINIO_STORAGE_MEDIA_URL = SITE_PREFIX + env('MINIO_STORAGE_MEDIA_URL')``, SITE_PREFIX
    from USE_HTTP), and upstream's build.py writes ``f'{base_url}/data'``: a scheme here made
    ``https://https://<host>/data``. MinIO's own redirect URL is read by MinIO and keeps one."""
    cfg = load_config(write_config(tmp_path / "c.json", base_config(tmp_path)), {})
    cfg.generalSettings.useHttp = use_http  # (https also needs nginxSettings to validate)
    env = environment(cfg, "k" * 20)
    host = cfg.generalSettings.baseUrl
    assert env["MINIO_STORAGE_MEDIA_URL"] == f"{host}/data"
    assert env["MINIO_STORAGE_STATIC_URL"] == f"{host}/static"
    site_prefix = "http://" if env["USE_HTTP"] == "true" else "https://"
    scheme = "http://" if use_http else "https://"
    assert site_prefix + env["MINIO_STORAGE_MEDIA_URL"] == f"{scheme}{host}/data"
    assert env["MINIO_BROWSER_REDIRECT_URL"] == f"{scheme}{host}/minio/"


def test_minio_absent_from_image_disables_it(tmp_path: Path, project: Path) -> None:
    """MINIO_ENABLED and MinIO's credentials follow the services really in the image."""
    cfg = load_config(write_config(tmp_path / "c.json", base_config(tmp_path)), {})
    assert cfg.generalSettings.environment == "production" and cfg.minioSettings is not None
    with_minio = environment(cfg, "k" * 20)
    without = environment(cfg, "k" * 20, minio_in_image=False)
    assert with_minio["MINIO_ENABLED"] == "true"
    assert without["MINIO_ENABLED"] == "false"
    assert without["MINIO_STORAGE_ACCESS_KEY"] == without["MINIO_STORAGE_SECRET_KEY"] == ""
