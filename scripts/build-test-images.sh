#!/usr/bin/env bash
# Builds the local Debian images that the Molecule scenarios run in (no registry is reachable here).
#
#   scripts/build-test-images.sh            build what is missing (an existing image is kept: cached)
#   scripts/build-test-images.sh --rebuild  build again even where the image exists
#
# Each image is a debootstrap minbase of one Debian release with python3, python3-apt, sudo and
# ca-certificates (what Ansible needs on a managed Debian host), the host's extra CA certificates
# a deb822 /etc/apt/sources.list.d/debian.sources like the one of Debian's official images, and
# package lists from the time of the build.
# Images: local/primenet-molecule:debian12 (bookworm) and local/primenet-molecule:debian13 (trixie).
# An image whose recipe label differs from this script's hash is built again.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work="$repo/.cache/test-images"
rebuild=false
[ "${1:-}" = "--rebuild" ] && rebuild=true

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf 'build-test-images: %s\n' "$*" >&2; exit 1; }

# shellcheck source=scripts/debian-rootfs.sh
. "$repo/scripts/debian-rootfs.sh"

[ "$(id -u)" -eq 0 ] || die "debootstrap needs root"
docker info >/dev/null 2>&1 || die "the Docker engine does not answer (run 'make setup' first)"
mirror=$(debian_mirror "$repo")
recipe=$(cat "${BASH_SOURCE[0]}" "$repo/scripts/debian-rootfs.sh" | sha256sum | cut -c1-16)
security_mirror=${DEBIAN_SECURITY_MIRROR:-${mirror%/debian}/debian-security}

build() {
  local version=$1 codename=$2
  local tag="local/primenet-molecule:debian$version"
  local have
  have=$(docker image inspect --format '{{ index .Config.Labels "org.primenet.recipe" }}' "$tag" 2>/dev/null || true)
  if ! $rebuild && [ "$have" = "$recipe" ]; then
    say "$tag exists (cached; --rebuild to build it again)"
    return 0
  fi
  say "Building $tag from $codename ($mirror)"
  local previous
  previous=$(docker image inspect --format '{{ .Id }}' "$tag" 2>/dev/null || true)
  local start=$SECONDS rootfs="$work/$codename"
  debootstrap_rootfs "$codename" "$rootfs" "$mirror" python3,python3-apt,sudo,ca-certificates "$work/$codename.log"
  # The host's extra CA certificates (a TLS-inspecting proxy), so that HTTPS works inside.
  copy_host_ca_certificates "$rootfs"

  # Sources as in Debian's official images: deb822, main only (roles add what they need).
  rm -f "$rootfs/etc/apt/sources.list"
  cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: $mirror
Suites: $codename $codename-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security_mirror
Suites: $codename-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
  # Package lists stay in the image, as on any installed host (check mode needs them); roles
  # refresh them when older than their cache_valid_time.
  chroot "$rootfs" apt-get update -qq
  chroot "$rootfs" apt-get clean
  rm -rf "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/log/*.log

  tar -C "$rootfs" -c . | docker import \
    -c 'ENV LANG=C.UTF-8' \
    -c 'CMD ["sleep", "infinity"]' \
    -c "LABEL org.primenet.recipe=$recipe" \
    -m "primenet molecule base: Debian $version ($codename) minbase + python3, python3-apt" \
    - "$tag" >/dev/null
  rm -rf "$rootfs"
  # Remove the image this one replaces (now untagged), unless a container still uses it.
  if [ -n "$previous" ] && [ "$previous" != "$(docker image inspect --format '{{ .Id }}' "$tag")" ]; then
    docker rmi "$previous" >/dev/null 2>&1 || true
  fi
  say "$tag built in $((SECONDS - start)) s"
}

mkdir -p "$work"
build 12 bookworm
build 13 trixie
