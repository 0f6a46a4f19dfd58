#!/usr/bin/env bash
# Make sure a Docker engine answers. On Debian as root, install Debian's docker.io and start
# dockerd (host-only networking, no bridge: see README "Engine"); elsewhere, say how to get one.
#
# The engine must outlive the terminal this runs in: where systemd runs, the service manager
# starts it; otherwise dockerd runs under `setsid` (its own session, no controlling terminal),
# so a Ctrl+C typed for build.py never reaches it. The script says once where its log is.
#
# A private engine (tests, a second engine beside the system one): set
#   DOCKER_HOST=unix:///path/docker.sock LOON_DOCKERD_ROOT=/some/dir
# and dockerd gets its own data root, exec root, pid file, log and containerd namespaces
# under that directory, leaving any other engine on the machine alone.
set -euo pipefail

engine_answers() { docker info >/dev/null 2>&1; }

# build.py makes its own venv (.build-files/.venv) the first time: Debian's python3 needs
# python3-venv (ensurepip) for that, whether or not an engine answers already.
venv_ok() { python3 -c 'import venv, ensurepip' >/dev/null 2>&1; }
if ! venv_ok; then
  if [ "$(id -u)" = 0 ] && [ -f /etc/debian_version ]; then
    echo "installing python3-venv from Debian (build.py makes its venv with it)..." >&2
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >/dev/null
  else
    echo "warning: python3 cannot make a virtual environment (no ensurepip), which build.py" \
         "needs on its first run: install python3-venv (Debian, Ubuntu: sudo apt-get" \
         "install python3-venv)" >&2
  fi
fi

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
command -v setsid >/dev/null 2>&1 || need+=(util-linux)
[ -x /bin/busybox ] || [ -x /usr/bin/busybox ] || need+=(busybox-static)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
# The remote-engine tests serve an engine over ssh and TLS on loopback.
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} from Debian..." >&2
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null
fi

private=${LOON_DOCKERD_ROOT:-}
if [ -n "$private" ]; then
  case "${DOCKER_HOST:-}" in
    unix://*) ;;
    *) echo "LOON_DOCKERD_ROOT needs DOCKER_HOST=unix:///path/to/docker.sock (the private" \
            "engine's socket)" >&2; exit 2 ;;
  esac
  mkdir -p "$private"
  ns="loon-$(basename "$private")"
  pidfile=$private/docker.pid
  log=$private/dockerd.log
  args=(--data-root "$private/data" --exec-root "$private/exec" --pidfile "$pidfile"
        -H "$DOCKER_HOST" --containerd-namespace "$ns"
        --containerd-plugins-namespace "$ns-plugins")
else
  pidfile=/var/run/docker.pid
  log=/var/log/dockerd.log
  args=(--data-root /var/lib/docker)
fi

dockerd_alive() {
  local pid
  pid=$(cat "$pidfile" 2>/dev/null || true)
  [ -n "$pid" ] && grep -qs dockerd "/proc/$pid/comm"
}

if [ -z "$private" ] && [ -d /run/systemd/system ] && systemctl cat docker.service >/dev/null 2>&1; then
  if ! systemctl is-active --quiet docker.service; then
    echo "starting docker.service (log: journalctl -u docker.service)..." >&2
    systemctl start docker.service
  fi
  log="journalctl -u docker.service"
elif ! dockerd_alive; then
  # A pid file left by a dockerd that was killed hard makes the next one refuse to start.
  rm -f "$pidfile"
  echo "starting dockerd in its own session (log: $log)..." >&2
  setsid -f dockerd "${args[@]}" --iptables=false --ip6tables=false --bridge=none \
    >"$log" 2>&1 </dev/null
fi

for _ in $(seq 1 60); do
  if engine_answers; then exit 0; fi
  sleep 0.5
done
echo "dockerd did not answer within 30 s; see $log:" >&2
[ -f "$log" ] && tail -n 20 "$log" >&2 || true
exit 1
