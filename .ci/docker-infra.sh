#!/usr/bin/env bash
# Docker infrastructure for the otel-uwsgi Docker harness on a machine with no
# running Docker engine and no reachable image registry (CI, dev VMs):
#   1. apt-installs docker.io, docker-compose (v1) and debootstrap if missing;
#   2. starts dockerd through docker/dockerd.sh (left running: the caller stops
#      it with `docker/dockerd.sh stop`);
#   3. builds the local base images, skipping those already present:
#        local/debian:bookworm  debootstrap --variant=minbase + docker import
#        local/python:3.11      docker/base/python.Dockerfile  (for python:3.11-slim)
#        local/mariadb:10.11    docker/base/mariadb.Dockerfile (for mariadb:11 / mysql:8)
# Needs root.  Cached runs take seconds.
#
# Environment:
#   OTEL_UWSGI_DOCKER_STATE    state dir: dockerd log/pids, rootfs tarball  [/var/tmp/otel-uwsgi-docker]
#   OTEL_UWSGI_DOCKER_REBUILD  1 = rebuild every image, without layer cache (the rootfs tarball is kept;
#                              delete it to re-run debootstrap)
#   DOCKER                     docker client                               [/usr/bin/docker]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export OTEL_UWSGI_DOCKER_STATE=${OTEL_UWSGI_DOCKER_STATE:-/var/tmp/otel-uwsgi-docker}
STATE_DIR=$OTEL_UWSGI_DOCKER_STATE
REBUILD=${OTEL_UWSGI_DOCKER_REBUILD:-0}
SUITE=bookworm
DEBIAN_IMAGE=local/debian:$SUITE
ROOTFS_TAR=$STATE_DIR/debian-$SUITE-minbase.tar
BASE_DIR=$ROOT/docker/base
HASH_LABEL=otel-uwsgi.base-hash

T_START=$(date +%s.%N)
step() { printf '\n==> %s\n' "$*"; }
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1fs", b - a }'; }

[ "$(id -u)" = 0 ] || { echo "ERROR: $0 must run as root" >&2; exit 1; }

# --- 1. packages -------------------------------------------------------------
step "packages: docker.io docker-compose debootstrap"
missing=()
for pkg in docker.io docker-compose debootstrap debian-archive-keyring; do
    dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    t=$(date +%s.%N)
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
    echo "packages installed in $(since "$t")"
else
    echo "already installed"
fi

# The distro's 20.10 client has BuildKit built in; a newer client earlier on
# PATH (e.g. /usr/local/bin/docker) may lack the buildx plugin it needs.
export DOCKER=${DOCKER:-/usr/bin/docker}
echo "docker client: $DOCKER ($("$DOCKER" --version))"

# --- 2. engine ---------------------------------------------------------------
step "docker engine"
"$ROOT/docker/dockerd.sh" start

image_exists() { "$DOCKER" image inspect "$1" >/dev/null 2>&1; }
image_label() { "$DOCKER" image inspect --format "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null || true; }

# --- 3. local/debian:bookworm ------------------------------------------------
step "$DEBIAN_IMAGE"
if image_exists "$DEBIAN_IMAGE" && [ "$REBUILD" != 1 ]; then
    echo "present: $DEBIAN_IMAGE"
else
    if [ -s "$ROOTFS_TAR" ]; then
        echo "using cached rootfs $ROOTFS_TAR"
    else
        rootfs=$STATE_DIR/rootfs-$SUITE.tmp
        rm -rf "$rootfs" "$ROOTFS_TAR.part"
        mkdir -p "$STATE_DIR"
        t=$(date +%s.%N)
        echo "debootstrap --variant=minbase $SUITE (default mirror; log: $STATE_DIR/debootstrap.log)"
        if ! debootstrap --variant=minbase "$SUITE" "$rootfs" >"$STATE_DIR/debootstrap.log" 2>&1; then
            tail -n 30 "$STATE_DIR/debootstrap.log" >&2
            rm -rf "$rootfs"
            echo "ERROR: debootstrap failed" >&2
            exit 1
        fi
        echo "debootstrap done in $(since "$t")"
        rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
        tar --numeric-owner -C "$rootfs" -cf "$ROOTFS_TAR.part" .
        mv "$ROOTFS_TAR.part" "$ROOTFS_TAR"
        rm -rf "$rootfs"
        echo "rootfs cached: $ROOTFS_TAR ($(du -h "$ROOTFS_TAR" | cut -f1))"
    fi
    t=$(date +%s.%N)
    "$DOCKER" import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["/bin/bash"]' \
        "$ROOTFS_TAR" "$DEBIAN_IMAGE" >/dev/null
    echo "imported $DEBIAN_IMAGE in $(since "$t")"
fi

# --- 4. images built from docker/base ----------------------------------------
# build TAG DOCKERFILE [EXTRA_FILES...]: skip when TAG exists and was built from
# the same inputs (hash of the Dockerfile, extra files and the base image id).
build() {
    local tag=$1 dockerfile=$2
    shift 2
    local base_id hash
    base_id=$("$DOCKER" image inspect --format '{{.Id}}' "$DEBIAN_IMAGE")
    hash=$( (cd "$BASE_DIR" && cat "$dockerfile" "$@"; echo "$base_id") | sha256sum | cut -c1-16)
    step "$tag ($dockerfile)"
    if image_exists "$tag" && [ "$REBUILD" != 1 ] && [ "$(image_label "$tag" "$HASH_LABEL")" = "$hash" ]; then
        echo "present: $tag (inputs unchanged)"
        return 0
    fi
    local t old_id
    old_id=$("$DOCKER" image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)
    local extra=()
    [ "$REBUILD" != 1 ] || extra=(--no-cache)
    t=$(date +%s.%N)
    DOCKER_BUILDKIT=1 BUILDKIT_PROGRESS=plain "$DOCKER" build "${extra[@]}" \
        --build-arg "BASE_IMAGE=$DEBIAN_IMAGE" \
        --label "$HASH_LABEL=$hash" \
        -f "$BASE_DIR/$dockerfile" -t "$tag" "$BASE_DIR"
    echo "built $tag in $(since "$t")"
    # Drop the image this build replaced (now untagged), unless a container uses it.
    if [ -n "$old_id" ] && [ "$old_id" != "$("$DOCKER" image inspect --format '{{.Id}}' "$tag")" ]; then
        "$DOCKER" rmi "$old_id" >/dev/null 2>&1 || true
    fi
}

build local/python:3.11 python.Dockerfile
build local/mariadb:10.11 mariadb.Dockerfile mariadb-entrypoint.sh mariadb-healthcheck.sh

# --- 5. summary --------------------------------------------------------------
step "local images (docker-infra done in $(since "$T_START"); dockerd left running: docker/dockerd.sh stop)"
"$DOCKER" image ls --filter 'reference=local/*'
