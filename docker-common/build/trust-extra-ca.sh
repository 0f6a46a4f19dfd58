#!/bin/sh
# Adds the certificates of loon-build/extra-ca.crt (copied to $1; empty = none configured) to
# the system CA bundle /etc/ssl/certs/ca-certificates.crt, which pip (PIP_CERT) and npm
# (NPM_CONFIG_CAFILE) use. The file may hold several PEM certificates (e.g. a whole bundle).
set -eu
crt=$1
dir=/usr/local/share/ca-certificates
if [ -s "$crt" ]; then
    grep -q -- '-----BEGIN CERTIFICATE-----' "$crt" || {
        echo "extra-ca.crt holds no PEM certificate" >&2; exit 1; }
    # one certificate per file, as update-ca-certificates expects
    awk -v dir="$dir" '
        /-----BEGIN CERTIFICATE-----/ { n++; f = sprintf("%s/loon-extra-ca-%04d.crt", dir, n); inside = 1 }
        inside { print > f }
        /-----END CERTIFICATE-----/ { if (inside) close(f); inside = 0 }
    ' "$crt"
    echo "extra CA certificates: $(ls "$dir"/loon-extra-ca-*.crt | wc -l)"
fi
rm -f "$crt"
update-ca-certificates >/dev/null
