#!/usr/bin/env bash
# The benchmark suite, one command: engine check, then every benchmark; appends a dated
# section to BENCHMARKS.md. Assumes the README's set-up (`bash scripts/test.sh` made .venv).
# Options go to `python -m bench` (--runs N, --window S, --only PART, --skip PART, --no-write).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-docker.sh
if [ ! -x .venv/bin/python ]; then
  echo "no .venv: run 'bash scripts/test.sh' first (it creates .venv and the engine)" >&2
  exit 1
fi
# The profile part samples with py-spy (a benchmark tool, not a test dependency).
.venv/bin/python -m pip install -q py-spy || echo "py-spy did not install: the profile part will fail and say so" >&2
exec .venv/bin/python -m bench "$@"
