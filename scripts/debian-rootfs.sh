# Shared by the scripts that make local Debian images with debootstrap (no registry is reachable here).
# Source it; it defines functions only and expects die() from the caller.
#
#   mirror=$(debian_mirror "$repo")                       the archive this machine's apt uses
#   debootstrap_rootfs CODENAME ROOTFS MIRROR PACKAGES LOG   a minbase with PACKAGES (comma-separated)
#   copy_host_ca_certificates ROOTFS                      the host's extra CAs, so HTTPS works inside

# The Debian archive this machine's apt already uses (DEBIAN_MIRROR where set), found in its sources as the
# nvidia_driver role finds a host's: deb822 *.sources first, then a one-line sources.list. Never a fixed host.
debian_mirror() {
  local repo=$1 mirror=${DEBIAN_MIRROR:-} release
  if [ -z "$mirror" ]; then
    release=$( (. /etc/os-release && [ "${ID:-}" = debian ] && echo "${VERSION_CODENAME:-}") 2>/dev/null || true)
    if [ -n "$release" ]; then
      mirror=$(awk -v codename="$release" -f "$repo/roles/nvidia_driver/files/debian-archive-uri.awk" \
        /etc/apt/sources.list.d/*.sources /etc/apt/sources.list) || mirror=""
    fi
  fi
  [ -n "$mirror" ] || die "no Debian archive in this machine's apt sources (a deb source of its Debian release \
with the component main): set DEBIAN_MIRROR to a Debian mirror's URL"
  printf '%s\n' "$mirror"
}

debootstrap_rootfs() {
  local codename=$1 rootfs=$2 mirror=$3 packages=$4 log=$5
  local debootstrap
  debootstrap=$(command -v debootstrap || echo /usr/sbin/debootstrap)
  [ -x "$debootstrap" ] || die "debootstrap is missing (run 'make setup' first)"
  [ "$(id -u)" -eq 0 ] || die "debootstrap needs root"
  rm -rf "$rootfs"
  mkdir -p "$rootfs"
  "$debootstrap" --variant=minbase --include="$packages" "$codename" "$rootfs" "$mirror" >"$log" 2>&1 \
    || { tail -n 30 "$log" >&2; die "debootstrap $codename failed (log: $log)"; }
}

# A TLS-inspecting proxy's CA (in /usr/local/share/ca-certificates) must be trusted inside too, or pip and apt
# over HTTPS fail with CERTIFICATE_VERIFY_FAILED.
copy_host_ca_certificates() {
  local rootfs=$1
  if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
    chroot "$rootfs" update-ca-certificates >/dev/null
  fi
}
