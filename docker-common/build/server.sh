#!/bin/bash
# Builder stage: when loon-build/loon-src (copied to /src) holds a Loon checkout, install its
# Django server (manage.py + requirements.txt) into /opt/loon/server with its own venv and
# gunicorn. Without a checkout it leaves /opt/loon/server empty.
set -euo pipefail
mkdir -p /opt/loon/server
manage=
for candidate in /src/apps/server/manage.py /src/server/manage.py /src/manage.py; do
    [ -f "$candidate" ] && { manage=$candidate; break; }
done
[ -n "$manage" ] || manage=$(find /src -maxdepth 4 -name manage.py -not -path '*/node_modules/*' | sort | head -n1)
if [ -z "$manage" ]; then
    if [ -n "$(ls -A /src)" ]; then
        echo "loon-src is not empty but holds no Django manage.py" >&2
        exit 1
    fi
    echo "no Loon checkout: building without server and celery"
    exit 0
fi
src_dir=$(dirname "$manage")
wsgi=$(find "$src_dir" -mindepth 2 -maxdepth 2 -name wsgi.py | sort | head -n1)
[ -n "$wsgi" ] || { echo "no <project>/wsgi.py next to $manage" >&2; exit 1; }
project=$(basename "$(dirname "$wsgi")")
echo "Loon server: $src_dir (Django project $project)"

apt-get update
apt-get install -y --no-install-recommends build-essential pkg-config python3-dev \
    libmariadb-dev libmariadb-dev-compat
rm -rf /var/lib/apt/lists/*

python3 -m venv /opt/loon/server/venv
pip=/opt/loon/server/venv/bin/pip
"$pip" install --no-cache-dir --upgrade pip
if [ -f "$src_dir/requirements.txt" ]; then
    "$pip" install --no-cache-dir -r "$src_dir/requirements.txt"
elif [ -f "$src_dir/pyproject.toml" ]; then
    "$pip" install --no-cache-dir "$src_dir"
fi
"$pip" install --no-cache-dir gunicorn
/opt/loon/server/venv/bin/python -c 'import django, celery' \
    || { echo "the server's requirements must include django and celery" >&2; exit 1; }

mkdir -p /opt/loon/server/app
cp -a "$src_dir"/. /opt/loon/server/app/
find /opt/loon/server -name __pycache__ -prune -exec rm -rf {} +
printf 'LOON_SERVER_DIR=/opt/loon/server/app\nLOON_DJANGO_PROJECT=%s\n' "$project" \
    > /opt/loon/server/loon-server.env
