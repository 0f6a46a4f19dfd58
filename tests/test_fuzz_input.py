"""Property: whatever bytes or JSON document config.json holds, `validate` ends with exit 0
or 2, never an exception, and writes nothing on exit 2 (nothing outside .build-files/ ever).

Driven in-process through the verb both front ends call (a subprocess per example would
take minutes); two subprocess checks confirm the real front ends behave the same.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from loon_supervisor.verbs import validate as validate_verb
from tests.conftest import ROOT, base_config, examples

SETTINGS = settings(max_examples=examples(400), deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])

leaves = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
          | st.text(max_size=12) | st.sampled_from(["/", "/etc", "..", "true", "null",
                                                    "[::1]", "loon:latest", ""]))
keys = st.text(max_size=10) | st.sampled_from(
    ["generalSettings", "mySqlSettings", "minioSettings", "nginxSettings",
     "deploymentSettings", "localDataSettings", "$schema", "useHttp", "baseUrl",
     "environment", "sourceVolumeLocation", "imageTag", "publishedPorts"])
documents = st.recursive(leaves, lambda kids: st.lists(kids, max_size=4)
                         | st.dictionaries(keys, kids, max_size=4), max_leaves=20)


def _tree(root: Path) -> dict[str, bytes | None]:
    return {str(p): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def _run(tmp: Path, content: bytes) -> None:
    config = tmp / "config.json"
    config.write_bytes(content)
    before = _tree(tmp)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = validate_verb.run(validate_verb.ValidateOptions(config))
    event(f"exit {code}")
    assert code in (0, 2), (code, err.getvalue())
    after = _tree(tmp)
    if code == 2:
        assert after == before, "exit 2 must write nothing"
        assert err.getvalue().strip()
    else:
        changed = {k for k in after.keys() | before.keys() if after.get(k) != before.get(k)}
        assert all(k.startswith(str(tmp / "project" / ".build-files")) for k in changed)


@pytest.fixture
def fuzz_root(tmp_path: Path, project: Path) -> Path:
    assert project == tmp_path / "project"
    return tmp_path


@SETTINGS
@given(raw=st.binary(max_size=300))
def test_raw_bytes(fuzz_root: Path, raw: bytes) -> None:
    _run(fuzz_root, raw)


@SETTINGS
@given(doc=documents)
def test_arbitrary_documents(fuzz_root: Path, doc: object) -> None:
    _run(fuzz_root, json.dumps(doc).encode())


@SETTINGS
@given(section=st.sampled_from(["generalSettings", "mySqlSettings", "minioSettings",
                                "nginxSettings", "deploymentSettings", "localDataSettings"]),
       key=keys, value=documents, replace=st.booleans())
def test_mutated_valid_config(fuzz_root: Path, section: str, key: str, value: object,
                              replace: bool) -> None:
    data = base_config(fuzz_root / "data")
    if replace:
        data[section] = value
    else:
        data.setdefault(section, {})
        if isinstance(data[section], dict):
            data[section][key] = value
    _run(fuzz_root, json.dumps(data).encode())


@settings(max_examples=examples(40), deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(depth=st.integers(1, 4000), shape=st.lists(st.sampled_from(["[", "{"]), min_size=1,
                                                 max_size=3))
def test_deep_documents(fuzz_root: Path, depth: int, shape: list[str]) -> None:
    opens = [shape[i % len(shape)] for i in range(depth)]
    text = "".join('{"k":' if o == "{" else "[" for o in opens) + "1" + "".join(
        "}" if o == "{" else "]" for o in reversed(opens))
    _run(fuzz_root, ('{"generalSettings":' + text + "}").encode())


@pytest.mark.parametrize("content", [b"\xff\xfe\x00garbage", ('[' * 5000 + ']' * 5000).encode()])
@pytest.mark.parametrize("front", ["loon", "build.py"])
def test_front_ends_never_traceback(tmp_path: Path, content: bytes, front: str) -> None:
    (tmp_path / "config.json").write_bytes(content)
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("LOON_")}
    env["LOON_PROJECT_ROOT"] = str(tmp_path / "project")
    cmd = [sys.executable, "-m", "loon_supervisor", "validate"] if front == "loon" else [
        sys.executable, str(ROOT / "build.py"), "-e"]
    r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.count("\n") <= 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]


VARS = ["LOON_GENERALSETTINGS__USEHTTP", "LOON_GENERALSETTINGS__BASEURL",
        "LOON_MYSQLSETTINGS", "LOON_MYSQLSETTINGS__DATABASENAME",
        "LOON_DEPLOYMENTSETTINGS__PUBLISHEDPORTS", "LOON_DEPLOYMENTSETTINGS__STOPTIMEOUT",
        "LOON_DEPLOYMENTSETTINGS__IMAGEDIRECTORY", "LOON_DEPLOYMENTSETTINGS",
        "LOON_NGINXSETTINGS", "LOON_X__Y", "LOON_", "LOON___"]

def _every_field_var() -> list[str]:
    """LOON_<SECTION>__<FIELD> for every field of every section (issue 29: every type)."""
    from loon_supervisor.config.overrides import SECTIONS, section_model

    out = []
    for real in SECTIONS.values():
        model = section_model(real)
        assert model is not None
        out += [f"LOON_{real.upper()}__{f.upper()}" for f in model.model_fields]
    return out


VARS += _every_field_var()
env_values = st.text(max_size=20) | documents.map(json.dumps) | st.sampled_from(
    ["null", "true", "false", "{}", "[]", "{\"databaseName\": 1}", "99999", "-1", "--5",
     "\u00b2", "\u0663\u0660", "1e999", "nan", "inf", "1.5", "+3", " 7 ", "9" * 30,
     "9" * 5000, "0x10", "1_000", "a/b", "../../x", "\ud7ff"])


@SETTINGS
@given(env=st.dictionaries(st.sampled_from(VARS) | st.text(min_size=1, max_size=12).map(
    lambda s: "LOON_" + s), env_values, max_size=4))
def test_arbitrary_overrides(fuzz_root: Path, env: dict[str, str]) -> None:
    from unittest import mock

    env = {k: v for k, v in env.items() if "\0" not in k + v and "=" not in k}
    data = json.dumps(base_config(fuzz_root / "data")).encode()
    with mock.patch.dict(os.environ, env):
        _run(fuzz_root, data)


@settings(max_examples=examples(400), deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.text(max_size=140) | st.sampled_from(["..", "../../x", "a/b", "a", "ab",
                                                     "-x", "x" * 129, "x" * 128]))
def test_deployment_names_stay_in_build_files(fuzz_root: Path, name: str) -> None:
    """Any --name is either refused (exit 2 class, one sentence) or names files inside
    .build-files/ only."""
    from loon_supervisor.lifecycle.identity import BadDeploymentName, resolve
    from loon_supervisor.lifecycle.state import lock_path, state_path

    try:
        identity = resolve(fuzz_root / "config.json", name)
    except BadDeploymentName as exc:
        assert exc.exit_code == 2 and "\n" not in str(exc)
        return
    build = (fuzz_root / "project" / ".build-files").resolve()
    for path in (state_path(identity.name), lock_path(identity.name)):
        assert path.resolve().parent == build
        assert len(path.name) + 20 < 255
