#!/usr/bin/env bash
# The base image every local image builds FROM, made without a registry: a Debian bookworm
# root filesystem from debootstrap (minbase, about 40 s), imported with `docker import`.
# Skipped when the engine already has it. Needs root and Debian's debootstrap.
#   DOCKER_HOST=unix:///run/llmfleet-docker.sock deploy/compose/base_image.sh [tag]
set -euo pipefail
TAG=${1:-llmfleet-base:bookworm}
MIRROR=${LLMFLEET_DEBIAN_MIRROR:-http://deb.debian.org/debian}
if docker image inspect "$TAG" >/dev/null 2>&1; then echo "base image $TAG: present"; exit 0; fi
command -v debootstrap >/dev/null || { echo "debootstrap not found: apt-get install debootstrap" >&2; exit 1; }
rootfs=$(mktemp -d /var/tmp/llmfleet-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
debootstrap --variant=minbase --include=ca-certificates bookworm "$rootfs" "$MIRROR" >"$rootfs.log" 2>&1 ||
  { tail -20 "$rootfs.log" >&2; exit 1; }
rm -f "$rootfs.log"
# The host's own trusted CAs (e.g. a TLS-inspecting egress proxy) go in too, so that apt, pip and
# Maven inside the builds trust what the host trusts.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
  chroot "$rootfs" update-ca-certificates >/dev/null
fi
# Slim like the official images: no apt lists or caches baked in; later layers run apt-get update.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb
tar -C "$rootfs" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["bash"]' - "$TAG" >/dev/null
echo "base image $TAG: built from debootstrap ($MIRROR)"
