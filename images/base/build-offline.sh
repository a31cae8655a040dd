#!/usr/bin/env bash
# Build the base image (python3, scikit-learn, pandas) with no container registry: debootstrap a
# minimal Debian bookworm from the mirror this machine's apt already uses, then `docker import` it.
# Usage: build-offline.sh [TAG]   (default dataver/base:latest). Needs root, debootstrap and docker.
set -euo pipefail
TAG="${1:-dataver/base:latest}"
mirror=$(grep -rhoE '^(deb|URIs:)[[:space:]]+[^[:space:]]+/debian/?([[:space:]]|$)' \
    /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null | awk '{print $2}' | head -n1 || true)
mirror="${mirror:-http://deb.debian.org/debian}"
root=$(mktemp -d /var/tmp/dataver-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
echo "debootstrap bookworm from $mirror into $root" >&2
debootstrap --variant=minbase --include=python3,python3-sklearn,python3-pandas,python3-joblib \
    bookworm "$root" "$mirror" >&2
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | docker import --change 'ENV LANG=C.UTF-8' - "$TAG" >&2
echo "$TAG"
