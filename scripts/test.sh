#!/usr/bin/env bash
# The whole test suite on a fresh Debian 12 machine: engine, virtualenv, lint, tests.
# Engine tests never skip: without an engine this fails.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-docker.sh
bash scripts/ensure-base-image.sh debian:bookworm-slim
bash scripts/ensure-browser.sh  # Chromium + chromedriver for the dashboard's browser tests
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[test]'
.venv/bin/ruff check .
.venv/bin/mypy  # strict on loon_supervisor/ (pyproject.toml [tool.mypy])
# The log core's model test at full depth (2,000 schedules for each of its two seeds); a
# bare `pytest` draws 100 for a quick run.
export LOON_TEST_MODEL_EXAMPLES="${LOON_TEST_MODEL_EXAMPLES:-2000}"
# ... the tests that install the project into fresh virtualenvs (marker `installs`), and the
# property tests at their full number of examples (tests/conftest.py `examples`).
export LOON_TEST_FULL=1
# Serially (-n 0): the engine tests time the engine's answers, and CI's 2 cores are theirs.
exec .venv/bin/python -m pytest -n 0 "$@"
