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
exec .venv/bin/python -m pytest "$@"
