"""A new user's first `make demo`, on a bare Debian 12 machine: a container with its own dockerd and no Node.js.

The machine is the debootstrap base of the Molecule scenarios (scripts/build-test-images.sh: python3, sudo,
ca-certificates), to which the test adds only git and make, as a new user has them. It reaches the package
registries as this machine does: host networking, and this machine's CA bundle, CA and proxy variables, apt sources
and Acquire settings and pip configuration (with the local folders it names) carried in read-only. It clones the
repository's committed HEAD (a git bundle) and runs `make demo`, setup included, to a task that runs and prints.

Its services bind this machine's loopback (host networking), so the demo gets free ports through the devnet's
`PRIMENET_DEVNET_<SERVICE>_PORT` settings. The container is removed however the test ends, and one left by a killed
run is removed before the next starts: nothing stays on this machine's dockerd but the cached base image.
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from machines import DEBIAN_12, WRITABLE_CGROUPS, docker, engine_host_flags, inside, remove_machines
from primenet.devnet.processes import free_port

REPO = Path(__file__).resolve().parents[2]
GIT = shutil.which("git") or "/usr/bin/git"
LABEL = "org.primenet.test=fresh-machine"
BUNDLE = "/mnt/primenet.bundle"
CHECKOUT = "/root/primenet"
SERVICES = ("ANVIL", "REDIS", "DISCOVERY", "ORCHESTRATOR", "MINER", "VALIDATOR")
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# What a user behind a TLS-inspecting proxy has set: where the CA is, and the proxy itself where one is named.
CARRIED_VARIABLES = (
    "NODE_EXTRA_CA_CERTS", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO",
    *(f"{name}_proxy" for name in ("http", "https", "ftp", "no", "all")),
    *(f"{name}_PROXY" for name in ("HTTP", "HTTPS", "FTP", "NO", "ALL")),
)  # fmt: skip
APT_ACCESS = re.compile(r"^\s*Acquire::.*(proxy|cainfo|verify-peer|check-valid-until|check-date)", re.I | re.M)

# The new user's machine before they type anything: git and make added to the base, and no Node.js at all.
PREPARE = f"""set -euo pipefail
{WRITABLE_CGROUPS}
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends git make >/dev/null
for tool in git make python3 sudo; do command -v "$tool" >/dev/null; done
if command -v node || command -v npm || command -v dockerd; then echo "not a bare machine" >&2; exit 1; fi
git clone -q -c advice.detachedHead=false {BUNDLE} {CHECKOUT}
"""


def pip_paths() -> dict[Path, Path]:
    """This machine's pip configuration files and the local files and folders they name (find-links, file://
    indexes, constraints), each with the place it takes in the container (the user's own files under root's home)."""
    home = Path.home()
    files = [Path("/etc/pip.conf"), Path("/etc/xdg/pip/pip.conf")]
    files += [home / ".config/pip/pip.conf", home / ".pip/pip.conf"]
    if os.environ.get("PIP_CONFIG_FILE"):
        files.append(Path(os.environ["PIP_CONFIG_FILE"]))
    values = [value for key, value in os.environ.items() if key.startswith("PIP_")]
    found: dict[Path, Path] = {}
    for file in (f for f in files if f.is_file()):
        found[file] = Path("/root") / file.relative_to(home) if file.is_relative_to(home) else file
        config = configparser.ConfigParser(interpolation=None)
        config.read(file)
        values += [value for section in config.sections() for value in config[section].values()]
    for token in (token for value in values for token in value.split()):
        path = Path(token.removeprefix("file://"))
        # A local index's pages link to the files beside it (../files/...): the folder that holds it comes along.
        if token.startswith("file://"):
            path = path.parent
        if path.is_absolute() and path.exists():
            found.setdefault(path, path)
    return found


def apt_paths() -> list[Path]:
    """This machine's apt sources and the apt.conf.d files that say how apt reaches them (proxies, CA, checks)."""
    paths = [p for p in (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d")) if p.exists()]
    conf = Path("/etc/apt/apt.conf.d")
    if conf.is_dir():
        paths += sorted(f for f in conf.iterdir() if f.is_file() and APT_ACCESS.search(f.read_text(errors="replace")))
    return paths


@pytest.fixture(scope="module")
def base_image() -> str:
    """The Molecule scenarios' Debian 12 image (built once, cached, shared with `make molecule`)."""
    built = subprocess.run(
        ["/bin/bash", str(REPO / "scripts/build-test-images.sh")], capture_output=True, text=True, check=False
    )
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-3000:]
    return DEBIAN_12


@pytest.fixture
def machine(base_image: str, tmp_path: Path) -> Iterator[str]:
    """A running bare machine with the committed HEAD of this repository at BUNDLE; removed whatever happens."""
    assert remove_machines(LABEL) == []
    bundle = tmp_path / "primenet.bundle"
    subprocess.run([GIT, "-C", str(REPO), "bundle", "create", str(bundle), "HEAD"], check=True, capture_output=True)
    mounts: dict[Path, Path] = {bundle: Path(BUNDLE)}
    if CA_BUNDLE.is_file():
        mounts[CA_BUNDLE] = CA_BUNDLE
    mounts |= {path: path for path in apt_paths()}
    mounts |= pip_paths()
    flags = [arg for source, target in mounts.items() for arg in ("-v", f"{source}:{target}:ro")]
    flags += [arg for key in CARRIED_VARIABLES if key in os.environ for arg in ("-e", f"{key}={os.environ[key]}")]
    flags += [arg for key, value in os.environ.items() if key.startswith("PIP_") for arg in ("-e", f"{key}={value}")]
    flags += engine_host_flags()
    name = f"primenet-fresh-{uuid.uuid4().hex[:8]}"
    try:
        started = docker("run", "--detach", "--name", name, "--label", LABEL, *flags, base_image, "sleep", "infinity")
        assert started.returncode == 0, started.stderr
        yield name
    finally:
        remove_machines(LABEL)


@pytest.mark.timeout(1500)
def test_make_demo_on_a_bare_debian_12_machine(machine: str) -> None:
    start = time.monotonic()
    rc, out = inside(machine, PREPARE, timeout=300)
    assert rc == 0, out[-3000:]
    prepared = time.monotonic()

    ports = {f"PRIMENET_DEVNET_{name}_PORT": str(free_port()) for name in SERVICES}
    rc, demo = inside(machine, f"cd {CHECKOUT} && make demo", env=ports, timeout=1200)
    ran = time.monotonic()
    print(f"\nbare machine ready in {prepared - start:.0f} s; `make demo`, setup included, took {ran - prepared:.0f} s")
    assert rc == 0, demo[-6000:]
    assert "hello from primenet" in demo
    assert "tick 1" in demo
    assert "runs on node 0x" in demo

    # The task ran in a container of the machine's own dockerd; setup brought a Node.js that Foundry accepts.
    rc, tasks = inside(machine, "docker ps --filter label=primenet.node --format '{{.Image}} {{.State}}'")
    assert (rc, tasks.split()) == (0, ["local/primenet-busybox:1", "running"]), tasks
    rc, node = inside(machine, f"cd {CHECKOUT} && PATH=$PWD/.venv/bin:$PATH node --version")
    assert rc == 0, node
    assert int(node.strip().removeprefix("v").split(".")[0]) >= 20, node

    rc, down = inside(machine, f"cd {CHECKOUT} && make down", env=ports)
    assert rc == 0, down[-3000:]
    rc, left = inside(machine, "docker ps -aq --filter label=primenet.node")
    assert (rc, left.split()) == (0, []), left
    assert remove_machines(LABEL) == []
