# Sourced by the loon-* service wrappers. Never enable `set -x` here: the environment holds
# secrets (passwords, SECRET_KEY) and would end up in /var/log/loon/*.log.

LOON_SERVICES_FILE=/etc/loon/services
LOON_PREFIX=${LOON_PREFIX:-$(basename "$0")}

say() { printf '%s: %s\n' "$LOON_PREFIX" "$*"; }
die() { say "error: $*" >&2; exit 1; }

# has_service NAME: true when NAME is one of the services built into this image.
has_service() {
    case ",$(cat "$LOON_SERVICES_FILE" 2>/dev/null)," in
        *",$1,"*) return 0 ;;
        *) return 1 ;;
    esac
}

# require_env VAR...: fail with a clear message when a variable is unset or empty.
require_env() {
    local name missing=()
    for name in "$@"; do
        [ -n "${!name:-}" ] || missing+=("$name")
    done
    [ ${#missing[@]} -eq 0 ] || die "missing environment variable(s): ${missing[*]}"
}

# remote_bind: LOON_BIND_ADDRESS when it is set and not loopback. A swarm deployment's core
# sets it (the node's advertise address) so that Celery workers on other nodes reach
# MariaDB, Redis and MinIO; a single container leaves it empty and they stay on loopback.
remote_bind() {
    case "${LOON_BIND_ADDRESS:-}" in
        ""|127.*|localhost|::1) return 1 ;;
        *) printf '%s' "$LOON_BIND_ADDRESS" ;;
    esac
}

is_true() {
    case "${1,,}" in 1|true|yes|on) return 0 ;; *) return 1 ;; esac
}

# exec_clean CMD...: run CMD without the secrets of the env file (services that need none).
exec_clean() {
    exec env -i PATH="/opt/loon/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
        HOME="${HOME:-/root}" LANG=C.UTF-8 TZ="${TZ:-}" "$@"
}

# enter_media_dir: without MinIO (MINIO_ENABLED=false) Loon's settings fall back to Django's
# file-system storage with an empty MEDIA_ROOT, i.e. the working directory. Run from
# LOON_MEDIA_DIR (a host volume: minioSettings.sourceVolumeLocation) so uploads survive
# down/up, with the Django project on PYTHONPATH. With MinIO: run from the project.
enter_media_dir() {
    if is_true "${MINIO_ENABLED:-false}"; then
        cd "$LOON_SERVER_DIR"
        return
    fi
    local media=${LOON_MEDIA_DIR:-/var/lib/loon/media}
    mkdir -p "$media"
    export PYTHONPATH="$LOON_SERVER_DIR${PYTHONPATH:+:$PYTHONPATH}"
    cd "$media"
    say "MINIO_ENABLED is false (no MinIO in this image): uploads are unavailable (Loon's" \
        "upload flow needs an S3-compatible store); files the server writes itself are" \
        "stored in $media"
}

# use_deployment_settings: Django and Celery read loon_deployment_settings (Loon's settings
# plus console LOGGING, and MEDIA_ROOT/STATIC_ROOT without MinIO; see
# /opt/loon/python/loon_deployment_settings.py) instead of the project's settings module.
use_deployment_settings() {
    export LOON_DJANGO_PROJECT DJANGO_SETTINGS_MODULE=loon_deployment_settings
    export LOON_STATIC_DIR=${LOON_STATIC_DIR:-/var/lib/loon/static}
    export PYTHONPATH="/opt/loon/python:$LOON_SERVER_DIR${PYTHONPATH:+:$PYTHONPATH}"
}
