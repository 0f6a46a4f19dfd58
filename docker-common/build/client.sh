#!/bin/bash
# Builder stage: when the Loon checkout (/src) has a client (package.json with a build
# script), build it with Debian's node/npm into /out/client. Otherwise /out/client stays empty
# and the final stage writes a small page listing the image's services instead.
set -euo pipefail
mkdir -p /out/client
client=
for candidate in /src/apps/client /src/client /src/frontend; do
    [ -f "$candidate/package.json" ] && { client=$candidate; break; }
done
if [ -z "$client" ]; then
    echo "no Loon client in loon-src: the image serves a status page at /"
    exit 0
fi
echo "Loon client: $client"
apt-get update
apt-get install -y --no-install-recommends nodejs npm
rm -rf /var/lib/apt/lists/*
cd "$client"
export VITE_ENVIRONMENT VITE_SERVER_URL VITE_USE_HTTP
if [ -f package-lock.json ]; then npm ci; else npm install; fi
npm run build
out=dist
[ -d "$out" ] || out=build
[ -f "$out/index.html" ] || { echo "the client build produced no dist/index.html" >&2; exit 1; }
cp -a "$out"/. /out/client/
