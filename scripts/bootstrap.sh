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
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
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

python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || die "python3 is $(python3 --version 2>&1); primenet needs Python 3.11 or newer."

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
npm_stamp="contracts/node_modules/.primenet-installed"
want=$(sha256sum contracts/package-lock.json | cut -d' ' -f1)
if [ "$(cat "$npm_stamp" 2>/dev/null)" != "$want" ]; then
  say "Installing the npm tools in contracts/ (npm ci)"
  quietly npm-ci npm --prefix contracts ci --no-audit --no-fund
  echo "$want" >"$npm_stamp"
fi

say "Setup complete"
