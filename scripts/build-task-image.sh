#!/usr/bin/env bash
# Builds the tiny local task image the runner's tests (and a demo task) use: a static busybox, nothing else.
# No registry is reachable on our machines, so the image is made with `docker import` of a tarball.
#
#   scripts/build-task-image.sh            build what is missing (an existing image is kept: cached)
#   scripts/build-task-image.sh --rebuild  build again even where the image exists
#
# Image: local/primenet-busybox:1, also tagged :latest (the pull-policy tests need a moving tag).
# Needs a statically linked busybox (Debian package busybox-static); installs it with apt-get when run as
# root and it is missing.
set -euo pipefail

image=local/primenet-busybox
rebuild=false
[ "${1:-}" = "--rebuild" ] && rebuild=true

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf 'build-task-image: %s\n' "$*" >&2; exit 1; }

docker info >/dev/null 2>&1 || die "the Docker engine does not answer (run 'make setup' first)"
recipe=$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-16)
have=$(docker image inspect --format '{{ index .Config.Labels "org.primenet.recipe" }}' "$image:1" 2>/dev/null || true)
if ! $rebuild && [ "$have" = "$recipe" ]; then
  docker image inspect "$image:latest" >/dev/null 2>&1 || docker tag "$image:1" "$image:latest"
  say "$image:1 exists (cached; --rebuild to build it again)"
  exit 0
fi

busybox=/bin/busybox
is_static() { [ -x "$1" ] && ! ldd "$1" >/dev/null 2>&1; }
if ! is_static "$busybox"; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "Installing busybox-static"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends busybox-static >/dev/null \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends busybox-static >/dev/null; }
  fi
  is_static "$busybox" || die "a static busybox is needed at $busybox (apt-get install busybox-static)"
fi

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/tmp" "$root/etc" "$root/data"
chmod 1777 "$root/tmp"
cp "$busybox" "$root/bin/busybox"
# Applet links (sh, echo, sleep, ...) pointing at /bin/busybox inside the image.
for applet in $("$busybox" --list); do
  [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"

tar -C "$root" -c . | docker import \
  -c 'ENV PATH=/bin' \
  -c 'CMD ["sh"]' \
  -c "LABEL org.primenet.recipe=$recipe" \
  -m "primenet task image: static busybox" \
  - "$image:1" >/dev/null
docker tag "$image:1" "$image:latest"
say "$image:1 built"
