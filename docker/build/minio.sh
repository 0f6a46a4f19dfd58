#!/bin/sh
# Builder stage: picks the MinIO server binary from loon-build/ when the supervisor provided it.
set -eu
mkdir -p /out
if [ -f /loon-build/minio ]; then
    install -m 0755 /loon-build/minio /out/minio
    echo "MinIO binary included"
else
    echo "no MinIO binary in loon-build/: building without minio"
fi
