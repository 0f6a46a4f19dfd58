#!/usr/bin/env bash
# Make sure debian:bookworm-slim exists on the engine: pull it, or where no registry is
# reachable (as on the project's CI machines), build the same rootfs with debootstrap.
set -euo pipefail
image=${1:-debian:bookworm-slim}
docker image inspect "$image" >/dev/null 2>&1 && exit 0
if timeout 60 docker pull -q "$image" >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" != 0 ] || ! command -v debootstrap >/dev/null 2>&1; then
  echo "cannot pull $image and cannot build it here (needs root and debootstrap)" >&2
  exit 1
fi
echo "no registry reachable: building $image with debootstrap (about 30 s)..." >&2
rootfs=$(mktemp -d /tmp/loon-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >/tmp/loon-debootstrap.log 2>&1 \
  || { echo "debootstrap failed; see /tmp/loon-debootstrap.log" >&2; exit 1; }
tar -C "$rootfs" -c . | docker import - "$image" >/dev/null
