#!/bin/bash
# Final stage: checks LOON_SERVICES ($1) against what is really in the image, installs one
# supervisord program per service and writes /etc/loon/services and the fallback page.
# $2: the services this image kind may hold; $3: those it always holds.
set -euo pipefail
services=$1 allowed=$2 required=$3

present() {
    case "$1" in
        mysql)  command -v mariadbd >/dev/null ;;
        redis)  command -v redis-server >/dev/null ;;
        nginx|data) command -v nginx >/dev/null ;;
        duckdb) [ -x /opt/loon/duckdb/bin/duckdb-server ] ;;
        minio)  [ -x /opt/loon/bin/minio ] ;;
        server|celery) [ -f /opt/loon/server/loon-server.env ] ;;
        *) return 1 ;;
    esac
}
in_list() { case ",$2," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }

errors=0
IFS=, read -r -a names <<< "$services"
seen=,
for s in "${names[@]}"; do
    if ! in_list "$s" "$allowed"; then
        echo "LOON_SERVICES: '$s' is not a service of this image (allowed: $allowed)" >&2; errors=1
    elif in_list "$s" "$seen"; then
        echo "LOON_SERVICES: '$s' is listed twice" >&2; errors=1
    elif ! present "$s"; then
        echo "LOON_SERVICES names '$s' but the build inputs do not provide it" >&2; errors=1
    fi
    seen="$seen$s,"
done
IFS=, read -r -a all <<< "$allowed"
for s in "${all[@]}"; do
    in_list "$s" "$services" && continue
    if in_list "$s" "$required" || { [ "$s" != data ] && [ "$s" != nginx ] && present "$s"; }; then
        echo "LOON_SERVICES lacks '$s', which this build includes" >&2; errors=1
    fi
done
[ "$errors" = 0 ] || { echo "LOON_SERVICES=$services does not match the build inputs" >&2; exit 1; }

mkdir -p /etc/supervisor/loon.d /etc/loon
rm -f /etc/supervisor/loon.d/*.conf
for s in "${names[@]}"; do
    cp "/opt/loon/programs/$s.conf" "/etc/supervisor/loon.d/$s.conf"
done
printf '%s\n' "$services" > /etc/loon/services

if [ ! -e /opt/loon/client/index.html ]; then
    mkdir -p /opt/loon/client
    {
        echo '<!doctype html><html><head><meta charset="utf-8"><title>Loon</title></head><body>'
        echo '<h1>Loon</h1><p>This Loon image was built without the Loon client.'
        if [ -s /opt/loon/meta/client-absent.txt ]; then
            echo "Why: $(sed 's/&/\&amp;/g; s/</\&lt;/g; s/>/\&gt;/g' /opt/loon/meta/client-absent.txt)."
        fi
        echo 'Services running in this container:</p><ul>'
        for s in "${names[@]}"; do echo "<li>$s</li>"; done
        echo '</ul></body></html>'
    } > /opt/loon/client/index.html
fi
echo "services: $services"
