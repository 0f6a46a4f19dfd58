#!/usr/bin/env bash
# The prebuilt-image tests push to and pull from a real registry on loopback: Debian's
# docker-registry package (Distribution 2.8). Installed on first use (Debian, root); the
# package's own service (all interfaces, port 5000) is disabled where systemd runs: each test
# starts its own registry on 127.0.0.1 with its own storage and password file.
set -euo pipefail
if command -v docker-registry >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || [ ! -f /etc/debian_version ]; then
  echo "docker-registry is missing: install Debian's docker-registry package (or any" \
       "Distribution 2.x 'registry' binary as docker-registry on PATH)" >&2
  exit 1
fi
echo "installing docker-registry from Debian..." >&2
apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-registry >/dev/null
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi
