#!/bin/sh
# Builder stage: Mosaic's duckdb-server from PyPI in its own venv at /opt/loon/duckdb.
set -eu
python3 -m venv /opt/loon/duckdb
/opt/loon/duckdb/bin/pip install --no-cache-dir "$1"
/opt/loon/duckdb/bin/pip uninstall -y pip >/dev/null
# test suites are dead weight in the image
find /opt/loon/duckdb/lib -depth -type d \( -name tests -o -name __pycache__ \) \
    -exec rm -rf {} +
/opt/loon/duckdb/bin/python -c 'import duckdb, pkg.server' >/dev/null
