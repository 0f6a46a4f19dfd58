#!/usr/bin/env bash
# Make sure a Docker engine answers. On Debian as root, install Debian's docker.io and start
# dockerd (host-only networking, no bridge: see README "Engine"); elsewhere, say how to get one.
set -euo pipefail

engine_answers() { docker info >/dev/null 2>&1; }

if command -v docker >/dev/null 2>&1 && engine_answers; then
  exit 0
fi

if [ "$(id -u)" != 0 ] || [ ! -f /etc/debian_version ]; then
  echo "No Docker engine answers. Install Docker (https://docs.docker.com/engine/install/)," >&2
  echo "start it, and make sure your user can reach /var/run/docker.sock." >&2
  exit 1
fi

need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
[ -x /bin/busybox ] || [ -x /usr/bin/busybox ] || need+=(busybox-static)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
# build.py makes its own venv: Debian's python3 needs python3-venv for that.
python3 -c 'import ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
# tests/remote: TLS certificates (openssl) and an ssh-reached engine (sshd, ssh-keygen).
command -v openssl >/dev/null 2>&1 || need+=(openssl)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} from Debian..." >&2
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null
fi

# A pid file left by a dockerd that was killed hard makes the next one refuse to start.
pidfile=/var/run/docker.pid
if [ -f "$pidfile" ]; then
  pid=$(cat "$pidfile" 2>/dev/null || true)
  if [ -z "$pid" ] || ! grep -qs dockerd "/proc/$pid/comm"; then rm -f "$pidfile"; fi
fi

if ! pgrep -x dockerd >/dev/null 2>&1; then
  echo "starting dockerd (log: /var/log/dockerd.log)..." >&2
  nohup dockerd --data-root /var/lib/docker --iptables=false --ip6tables=false --bridge=none \
    >/var/log/dockerd.log 2>&1 </dev/null &
fi

for _ in $(seq 1 60); do
  if engine_answers; then exit 0; fi
  sleep 0.5
done
echo "dockerd did not answer within 30 s; see /var/log/dockerd.log:" >&2
tail -n 20 /var/log/dockerd.log >&2 || true
exit 1
