"""The docs (README.md, docs/*.md) checked against the code, so they cannot drift.

Conventions the docs follow (README "Docs that are tested"):

- every ``LOON_*`` name a doc mentions is a setting's override or a name the tool knows for
  another purpose (``overrides.NOT_CONFIG``): set in the environment it draws no warning;
- the README's tables of ``build.py`` flags and ``loon`` commands match the programs' help,
  both ways (a verb or flag in a table exists; every verb and flag is in a table or in the
  README's sentence of options the table leaves out);
- a paragraph (headings aside) with a performance figure (:data:`FIGURE`: p50/p99, "% of a
  core", MB/s, lines/s, "ms of CPU", "halved", "Nx the", minutes of a suite) links the
  BENCHMARKS.md section it comes from, as ``BENCHMARKS.md#anchor``; every such anchor
  exists (GitHub's heading anchors);
- a fenced code block right after the line ``<!-- doc-test: engine-free -->`` runs as
  written with bash in a scratch copy of the project (build.py, config.example.json) with
  this checkout's ``loon`` and ``python3`` first on PATH, and exits 0
  (``<!-- doc-test: engine-free exit=N -->`` expects N).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer.main

from loon_supervisor.config.overrides import read_overrides
from loon_supervisor.errors import ConfigError
from tests.conftest import ROOT
from tests.docs.markdown import BENCHMARKS, DOCS, README, anchors, paragraphs

sys.path.insert(0, str(ROOT))
import build  # noqa: E402

ALL_DOCS = [README, *DOCS]
LOON_NAME = re.compile(r"\bLOON_[A-Z0-9_]*[A-Z0-9]\b|\bLOON_[A-Z0-9]+_(?![A-Za-z0-9<])")


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


# ---------------------------------------------------------------- LOON_* names


def _names() -> dict[str, str]:
    found: dict[str, str] = {}
    for doc in ALL_DOCS:
        for m in LOON_NAME.finditer(doc.read_text(encoding="utf-8")):
            found.setdefault(m.group(0), _rel(doc))
    return found


def test_docs_mention_loon_names() -> None:
    names = _names()
    assert {"LOON_PROJECT_ROOT", "LOON_ENGINE_GRACE", "LOON_COALESCE_MS",
            "LOON_HOSTDIR_COALESCE_MS"} <= set(names)


@pytest.mark.parametrize("name", sorted(_names()))
def test_every_loon_name_a_doc_mentions_is_accepted_without_a_warning(name: str) -> None:
    """Set alone (value 1): a setting (its value may then be wrong: ConfigError names the
    variable) or a known non-setting name; never 'matches no setting and is ignored'."""
    environ = {name + ("X" if name.endswith("_") else ""): "1"}
    try:
        out = read_overrides(environ)
    except ConfigError as exc:
        assert name in str(exc)  # recognised as a setting; "1" just is no valid value
        return
    assert out.warnings == [], f"{name} (in {_names()[name]}): {out.warnings}"


def test_documented_tuning_knobs_draw_no_warning_in_a_real_run(tmp_path: Path) -> None:
    shutil.copy(ROOT / "config.example.json", tmp_path)
    shutil.copy(ROOT / "config.example.json", tmp_path / "config.json")  # a project
    env = _clean_env()
    env.update(LOON_COALESCE_MS="5", LOON_HOSTDIR_COALESCE_MS="0", LOON_ENGINE_GRACE="3")
    r = subprocess.run([sys.executable, "-m", "loon_supervisor", "--project-dir",
                        str(tmp_path), "validate", "-c", "config.example.json"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "matches no setting" not in r.stdout + r.stderr


# ---------------------------------------------------------------- README tables vs --help


def _table(title: str) -> list[list[str]]:
    """Rows (cells) of the first table after the heading ``title``."""
    text = README.read_text(encoding="utf-8")
    start = text.index(title)
    rows: list[list[str]] = []
    for line in text[start:].splitlines()[1:]:
        if line.startswith("|"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if not set("".join(cells)) <= set("-: "):
                rows.append(cells)
        elif rows:
            break
    return rows[1:]  # without the header


def _flags(text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", text))


def _loon() -> Any:
    """The `loon` app as its help sees it (typer's click group)."""
    from loon_supervisor.cli import app

    group = typer.main.get_command(app)
    assert hasattr(group, "commands")
    return group


def _option_groups(cmd: Any) -> list[set[str]]:
    """Each option `cmd --help` lists, with its aliases (-v, --verbose)."""
    return [{*p.opts, *p.secondary_opts} for p in cmd.params
            if p.param_type_name == "option" and not p.hidden] + [{"--help"}]


def _options(cmd: Any) -> set[str]:
    return set().union(*_option_groups(cmd))


def _verbs() -> dict[str, Any]:
    return {n: c for n, c in _loon().commands.items() if not c.hidden}


def _rows() -> dict[str, str]:
    """verb -> its row's text (both cells) in the README's `loon` table."""
    out: dict[str, str] = {}
    for cells in _table("### The `loon` command"):
        m = re.match(r"`loon ([\w-]+)", cells[0])
        assert m, f"README's loon table: a row that names no verb: {cells[0]}"
        out[m.group(1)] = " | ".join(cells)
    return out


def _left_out() -> str:
    """The README's sentence of options the table leaves out."""
    for _, para in paragraphs(README):
        if para.startswith("Options the table leaves out:"):
            return para
    raise AssertionError("README: the paragraph 'Options the table leaves out: ...' is gone")


def test_build_py_flags_table_matches_its_help() -> None:
    documented: set[str] = set()
    for cells in _table("## build.py flags"):
        documented |= _flags(cells[0])
    actual = {o for a in build.parser()._actions for o in a.option_strings}
    assert documented - actual == set(), "README lists build.py flags that do not exist"
    assert actual - documented == set(), "build.py flags missing from the README's table"


def test_every_loon_verb_is_in_the_readme_table_and_back() -> None:
    rows, verbs = _rows(), _verbs()
    assert set(rows) - set(verbs) == set(), "README's table names verbs loon does not have"
    assert set(verbs) - set(rows) == set(), (
        "verbs of `loon --help` missing from the README's `loon` table: add a row for each")


def test_every_flag_in_the_loon_table_exists_and_every_option_is_documented() -> None:
    rows, verbs, common = _rows(), _verbs(), _flags(_left_out())
    for verb, row in rows.items():
        cmd = verbs[verb]
        options = _options(cmd)
        if cmd.context_settings.get("ignore_unknown_options"):
            continue  # deploy-server: its own parser, documented in docs/deploy-server.md
        stated = _flags(row.split(" | ")[0])  # the command cell
        assert stated - options == set(), f"README: `loon {verb}` has no {stated - options}"
        said = _flags(row) | common
        missing = [sorted(g) for g in _option_groups(cmd) if not g & said]
        assert missing == [], f"`loon {verb}` options missing from its README row: {missing}"


def test_name_claims_match_the_verbs() -> None:
    sentence = _left_out()
    takes = re.search(r"`--name NAME`.*?taken by (.*?), while (.*?) act", sentence, re.S)
    assert takes, "README: the --name clause ('taken by ..., while ... act') is gone"
    verbs = _verbs()
    said_with = re.findall(r"`([\w-]+)`", takes.group(1))
    said_without = re.findall(r"`([\w-]+)`", takes.group(2))
    assert said_with and said_without
    for verb in said_with:
        assert "--name" in _options(verbs[verb]), f"README says `loon {verb}` takes --name"
    for verb in said_without:
        assert "--name" not in _options(verbs[verb]), f"README says `loon {verb}` has no --name"
    really = {v for v, c in verbs.items() if "--name" in _options(c)}
    assert really - set(said_with) == set(), "verbs with --name the README does not name"


def test_global_options_are_documented() -> None:
    text = README.read_text(encoding="utf-8")
    for option in _options(_loon()) - {"--show-completion"}:
        assert f"`{option}" in text or f"loon {option}" in text, f"README: {option}"


# ---------------------------------------------------------------- figures cite BENCHMARKS.md

FIGURE = re.compile(r"\bp(?:50|99)\b|% of a core|\bMB/s\b|\blines/s\b|\bms of CPU\b|"
                    r"\bhalv(?:ed|es)\b|\b\d+(?:\.\d+)?x (?:the|faster|slower)\b|"
                    r"\bmin on \d+ cores\b", re.I)
CITE = re.compile(r"BENCHMARKS\.md#([\w-]+)|(?<=[\s,(])#(\d{4}-\d\d-\d\d-[\w-]+)")


def test_every_figure_cites_its_benchmarks_section() -> None:
    known = anchors(BENCHMARKS)
    uncited, broken = [], []
    for doc in ALL_DOCS:
        for line, para in paragraphs(doc):
            if para.startswith("#"):
                continue
            cites = [a or b for a, b in CITE.findall(para)]
            broken += [f"{_rel(doc)}:{line}: #{c}" for c in cites if c not in known]
            if FIGURE.search(para) and not cites:
                uncited.append(f"{_rel(doc)}:{line}: {para[:100]!r}")
    assert broken == [], "links to BENCHMARKS.md sections that do not exist"
    assert uncited == [], "figures without a BENCHMARKS.md#section link in their paragraph:\n" \
        + "\n".join(uncited)


def test_anchor_rules_follow_github() -> None:
    from tests.docs.markdown import slug

    assert slug("## 2026-11-29 09:47 UTC on vm".lstrip("# ")) == "2026-11-29-0947-utc-on-vm"
    assert slug("Local fast path (logSource hostdir) against the docker CLI") == \
        "local-fast-path-logsource-hostdir-against-the-docker-cli"
    assert "local-fast-path-logsource-hostdir-against-the-docker-cli-1" in anchors(BENCHMARKS)


# ---------------------------------------------------------------- engine-free examples

MARK = re.compile(r"^<!-- doc-test: engine-free(?: exit=(\d+))? -->$")


def _examples() -> list[tuple[str, str, int]]:
    out: list[tuple[str, str, int]] = []
    for doc in ALL_DOCS:
        lines = doc.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            m = MARK.match(line.strip())
            if not m:
                continue
            assert lines[i + 1].startswith("```"), f"{_rel(doc)}:{i + 1}: no code block after"
            end = next(j for j in range(i + 2, len(lines)) if lines[j].startswith("```"))
            out.append((f"{_rel(doc)}:{i + 2}", "\n".join(lines[i + 2:end]),
                        int(m.group(1) or 0)))
    return out


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOON_", "DOCKER_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["DOCKER_HOST"] = "unix:///nonexistent/docker.sock"  # engine-free means it
    return env


def test_docs_mark_engine_free_examples() -> None:
    assert len(_examples()) >= 3


@pytest.mark.parametrize(("where", "script", "code"), _examples(),
                         ids=[w for w, _, _ in _examples()])
def test_engine_free_example_runs_as_written(where: str, script: str, code: int,
                                             tmp_path: Path) -> None:
    project = tmp_path / "clone"
    project.mkdir()
    for name in ("build.py", "config.example.json", "config.schema.json"):
        shutil.copy(ROOT / name, project / name)
    r = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=project,
                       env=_clean_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == code, f"{where} exited {r.returncode}:\n{r.stdout}{r.stderr}"
    assert "Traceback" not in r.stderr
