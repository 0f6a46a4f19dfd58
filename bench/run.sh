#!/usr/bin/env bash
# The benchmark suite, one command: engine check, then every benchmark; appends a dated
# section to BENCHMARKS.md. Assumes the README's set-up (`bash scripts/test.sh` made .venv).
# Options go to `python -m bench` (--runs N, --window S, --only PART, --no-write).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-docker.sh
if [ ! -x .venv/bin/python ]; then
  echo "no .venv: run 'bash scripts/test.sh' first (it creates .venv and the engine)" >&2
  exit 1
fi
.venv/bin/python -m bench "$@"
# The local fast path (logSource hostdir) against the CLI, its own section; LOON_BENCH_FASTPATH=0 skips it.
if [ "${LOON_BENCH_FASTPATH:-1}" != 0 ]; then
  .venv/bin/python -m bench.fastpath "$@"
fi
