#!/usr/bin/env bash
# Builds the service images (discovery, orchestrator, validator, miner) and the chain (Anvil) and Redis images
# offline: no registry is reachable here, so the base is a local debootstrap image and the Python packages come
# from a wheelhouse that the host's pip fills (with the machine's own index configuration).
#
#   scripts/build-images.sh            build what changed (Docker's layer cache; seconds when nothing did)
#   scripts/build-images.sh --rebuild  make the base image and the wheelhouse again, build without the cache
#
# Tags: primenet/<name>:<version> (pyproject's project.version) and primenet/<name>:dev.
# Base: local/python-base:bookworm (a minbase with python3 and ca-certificates, trimmed), rebuilt when its
# recipe label differs from the hash of the code that makes it. Prints a table of tags and sizes at the end.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
work="$repo/.cache/images"
context="$work/context"
base_tag=local/python-base:bookworm
images=(discovery orchestrator validator miner chain redis)
anvil="contracts/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"
rebuild=false
[ "${1:-}" = "--rebuild" ] && rebuild=true

# Removes the image that a new build of the tag $1 replaced (now untagged), unless a container still uses it.
drop_replaced() {
  local tag=$1 previous=$2
  if [ -n "$previous" ] && [ "$previous" != "$(docker image inspect --format '{{ .Id }}' "$tag")" ]; then
    docker rmi "$previous" >/dev/null 2>&1 || true
  fi
}
say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf 'build-images: %s\n' "$*" >&2; exit 1; }
# shellcheck source=scripts/debian-rootfs.sh
. "$repo/scripts/debian-rootfs.sh"

docker info >/dev/null 2>&1 || die "the Docker engine does not answer (run 'make setup' first)"
[ -x .venv/bin/python ] || die ".venv is missing (run 'make setup' first)"
[ -x "$anvil" ] || die "no anvil binary at $anvil (run 'make setup' first: npm ci installs it)"
compgen -G 'contracts/artifacts/*.json' >/dev/null || die "no contracts/artifacts/*.json (run 'make contracts')"
version=$(.venv/bin/python -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
# The OCI source label: PRIMENET_IMAGE_SOURCE, else the origin remote without any user:password@ part.
source_url=${PRIMENET_IMAGE_SOURCE:-$(git remote get-url origin 2>/dev/null | sed -E 's#^([a-z+]+://)[^/@]*@#\1#' || true)}
source_url=${source_url:-unknown}
mkdir -p "$work"

# --- 1. The base image ----------------------------------------------------------------------------------------
# What a container never reads goes: docs, man pages, locales, apt's lists and caches, logs. dpkg is told to
# skip them for packages installed later (redis-server), so those layers stay small too.
build_base() {
  local rootfs="$work/base-rootfs" mirror
  mirror=$(debian_mirror "$repo")
  say "Building $base_tag from bookworm ($mirror)"
  debootstrap_rootfs bookworm "$rootfs" "$mirror" python3,ca-certificates "$work/base.log"
  copy_host_ca_certificates "$rootfs"
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/01-primenet-slim" <<'EXCLUDES'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EXCLUDES
  find "$rootfs/usr/share/doc" -mindepth 1 ! -name copyright ! -type d -delete
  find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$rootfs"/usr/share/{man,info,locale,lintian}/* "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/var/log/*.log "$rootfs"/var/cache/debconf/*-old
  # glibc's iconv modules (8 MB): Python's codecs, anvil and redis never load them. Python's 2to3, help() texts
  # and regression-test support are never run in a service.
  rm -rf "$rootfs"/usr/lib/x86_64-linux-gnu/gconv "$rootfs"/usr/lib/python3.11/{lib2to3,pydoc_data,test}
  tar -C "$rootfs" -c . | docker import \
    -c 'ENV LANG=C.UTF-8' \
    -c 'CMD ["python3"]' \
    -c "LABEL org.primenet.recipe=$1" \
    -m "primenet base: Debian bookworm minbase + python3, ca-certificates (trimmed)" \
    - "$base_tag" >/dev/null
  rm -rf "$rootfs"
}

base_recipe=$( { declare -f build_base; cat scripts/debian-rootfs.sh; } | sha256sum | cut -c1-16)
have=$(docker image inspect --format '{{ index .Config.Labels "org.primenet.recipe" }}' "$base_tag" 2>/dev/null || true)
if $rebuild || [ "$have" != "$base_recipe" ]; then
  start=$SECONDS
  previous=$(docker image inspect --format '{{ .Id }}' "$base_tag" 2>/dev/null || true)
  build_base "$base_recipe"
  drop_replaced "$base_tag" "$previous"
  say "$base_tag built in $((SECONDS - start)) s"
else
  say "$base_tag exists (cached)"
fi

# --- 2. The wheelhouse: runtime dependencies only, and primenet's own wheel -------------------------------------
# The dependency list is pyproject's [project].dependencies (no dev extras). Refilled when that list changes.
wheels="$work/wheels"
deps=$(.venv/bin/python -c '
import tomllib
print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))')
# The host's pip evaluates environment markers for the host's Python; the base image's interpreter may differ
# (bookworm's 3.11.2 needs async-timeout, 3.11.7 does not), so what its markers add is fetched as well.
target_env=$(docker run --rm -i --network none "$base_tag" python3 - --environment <services/images/wheelhouse.py)
deps_hash=$(printf '%s\n%s' "$deps" "$target_env" | sha256sum | cut -c1-16)
fill_wheels() {
  .venv/bin/pip wheel --quiet --wheel-dir "$wheels/deps" "$@" >>"$work/wheelhouse.log" 2>&1 \
    || { tail -n 30 "$work/wheelhouse.log" >&2; die "pip wheel failed (log: $work/wheelhouse.log)"; }
}
if $rebuild || [ "$(cat "$wheels/deps/.primenet-deps" 2>/dev/null)" != "$deps_hash" ] \
    || ! compgen -G "$wheels/tools/pip-*.whl" >/dev/null; then
  say "Filling the wheelhouse with the runtime dependencies"
  rm -rf "$wheels/deps" "$wheels/tools" "$work/wheelhouse.log"
  mkdir -p "$wheels/deps"
  mapfile -t requirements <<<"$deps"
  fill_wheels "${requirements[@]}"
  # pip itself, run from its wheel in the builder stage: the venv never gets pip or setuptools.
  mkdir -p "$wheels/tools"
  .venv/bin/pip wheel --quiet --no-deps --wheel-dir "$wheels/tools" pip >>"$work/wheelhouse.log" 2>&1 \
    || die "pip wheel pip failed (log: $work/wheelhouse.log)"
  for _ in 1 2 3 4 5; do
    mapfile -t lacking < <(.venv/bin/python services/images/wheelhouse.py "$wheels/deps" "$target_env" \
      "${requirements[@]}")
    [ ${#lacking[@]} -eq 0 ] && break
    say "Adding what the image's Python needs beyond the host's: ${lacking[*]}"
    fill_wheels "${lacking[@]}"
  done
  [ ${#lacking[@]} -eq 0 ] || die "the wheelhouse still lacks: ${lacking[*]}"
  echo "$deps_hash" >"$wheels/deps/.primenet-deps"
fi
printf '%s\n' "$deps" >"$wheels/deps/requirements.txt"
# primenet's wheel, built again only when its sources change; hatchling with a fixed SOURCE_DATE_EPOCH makes
# the same bytes from the same tree, so the image layer that installs it stays cached.
source_hash=$( { cat pyproject.toml README.md
  find services/primenet -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 | sort -z | xargs -0 sha256sum
} | sha256sum | cut -c1-16)
if $rebuild || [ "$(cat "$wheels/own/.primenet-source" 2>/dev/null)" != "$source_hash" ]; then
  say "Building the primenet wheel"
  rm -rf "$wheels/own"
  mkdir -p "$wheels/own"
  SOURCE_DATE_EPOCH=315532800 .venv/bin/pip wheel --quiet --no-deps --wheel-dir "$wheels/own" . \
    >"$work/wheel.log" 2>&1 || { tail -n 30 "$work/wheel.log" >&2; die "building the primenet wheel failed"; }
  echo "$source_hash" >"$wheels/own/.primenet-source"
fi

# --- 3. The build context: a small staged folder, not the repository (which has .venv and node_modules) --------
# Copies keep content and mode; the legacy builder's cache keys on those, not on mtimes.
rm -rf "$context"
mkdir -p "$context/wheels/deps" "$context/wheels/own" "$context/wheels/tools" "$context/artifacts"
cp -p "$wheels"/deps/*.whl "$wheels/deps/requirements.txt" "$context/wheels/deps/"
cp -p "$wheels"/tools/*.whl "$context/wheels/tools/"
cp -p "$wheels"/own/*.whl "$context/wheels/own/"
cp -p contracts/artifacts/*.json "$context/artifacts/"
install -m 0755 services/images/healthcheck.py "$context/primenet-healthcheck"
install -m 0755 "$anvil" "$context/anvil"

# --- 4. The images --------------------------------------------------------------------------------------------
# build_target TARGET TAG...: one target of the Dockerfile. --rebuild: the first build (which goes through every
# stage before its target) runs without the cache; the later ones reuse the layers it has just made.
no_cache=()
$rebuild && no_cache=(--no-cache)
build_target() {
  local target=$1 start=$SECONDS log="$work/build-$1.log" previous tag
  shift
  previous=$(docker image inspect --format '{{ .Id }}' "$1" 2>/dev/null || true)
  local tags=()
  for tag in "$@"; do tags+=(-t "$tag"); done
  if ! DOCKER_BUILDKIT=0 docker build --network host --force-rm "${no_cache[@]}" \
      -f services/images/Dockerfile --target "$target" \
      --build-arg BASE_IMAGE="$base_tag" --build-arg VERSION="$version" --build-arg REVISION="$revision" \
      --build-arg SOURCE="$source_url" "${tags[@]}" "$context" >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    die "building $1 failed (log: $log)"
  fi
  no_cache=()
  drop_replaced "$1" "$previous"
  say "$1 built in $((SECONDS - start)) s"
}
# The builder stage gets a tag of its own, so the image that caches it is not a dangling one (which an image
# prune would take, costing the next build its cache) and the one it replaces is removed like any other.
build_target builder local/primenet-builder:latest
for name in "${images[@]}"; do
  build_target "$name" "primenet/$name:$version" "primenet/$name:dev"
done

printf '\n%-32s %10s\n' IMAGE SIZE
for name in "${images[@]}"; do
  bytes=$(docker image inspect -f '{{ .Size }}' "primenet/$name:$version")
  printf '%-32s %7d MB\n' "primenet/$name:$version" $((bytes / 1000000))
done
