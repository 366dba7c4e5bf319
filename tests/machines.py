"""Containers that stand in for whole machines: a Debian host on this machine's network running its own dockerd.

`--privileged` fails on machines whose capability bounding set lacks a capability (ours lack SYS_RESOURCE), so a
machine container gets what it gives less what this machine cannot give, no seccomp or AppArmor profile, writable
cgroups (`WRITABLE_CGROUPS`, run inside once it started) and `/var/lib/docker` on a tmpfs, where the inner engine's
overlay2 can stack. Each test labels its machines and removes them however it ends (`remove_machines`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from primenet.devnet.processes import free_port

REPO = Path(__file__).resolve().parents[1]
DOCKER = shutil.which("docker") or "/usr/bin/docker"
# The Molecule scenarios' debootstrap base (scripts/build-test-images.sh): python3, python3-apt, sudo, CA certificates.
DEBIAN_12 = "local/primenet-molecule:debian12"
# Capability bits as in linux/capability.h, by number: --privileged asks dockerd for all of them.
CAPABILITIES = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
    "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
    "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
    "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ",
)  # fmt: skip
DEVNET_SERVICES = ("ANVIL", "REDIS", "DISCOVERY", "ORCHESTRATOR", "MINER", "VALIDATOR")
# What --privileged does for cgroups: the inner engine's containers need them writable.
WRITABLE_CGROUPS = 'for hierarchy in /sys/fs/cgroup/*/; do mount -o remount,bind,rw "$hierarchy"; done'


def docker(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=timeout, check=False)


def inside(name: str, script: str, env: dict[str, str] | None = None, timeout: float = 120) -> tuple[int, str]:
    """Run a bash script as root in the container; its exit status and its stdout and stderr together."""
    flags = [arg for key, value in (env or {}).items() for arg in ("-e", f"{key}={value}")]
    done = subprocess.run(
        [DOCKER, "exec", *flags, name, "bash", "-c", script],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    return done.returncode, done.stdout


def dropped_capabilities() -> list[str]:
    """The capabilities this machine's own bounding set lacks: dockerd cannot give them (and --privileged fails)."""
    status = Path("/proc/self/status").read_text()
    (bounding,) = (int(line.split()[1], 16) for line in status.splitlines() if line.startswith("CapBnd:"))
    return [name for bit, name in enumerate(CAPABILITIES) if not bounding >> bit & 1]


def engine_host_flags() -> list[str]:
    """`docker run` flags for a machine that runs its own dockerd and shares this machine's network."""
    flags = ["--cap-add", "ALL", *(arg for cap in dropped_capabilities() for arg in ("--cap-drop", cap))]
    flags += ["--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined"]
    return [*flags, "--tmpfs", "/var/lib/docker:exec", "--network", "host"]


def remove_machines(label: str) -> list[str]:
    """Remove every container with `label` (also those a killed run left); the names of those that remain."""
    listed = docker("ps", "-aq", "--filter", f"label={label}").stdout.split()
    if listed:
        docker("rm", "--force", "--volumes", *listed)
    return docker("ps", "-a", "--format", "{{.Names}}", "--filter", f"label={label}").stdout.split()


def start_gpu_host(name: str, label: str, work: Path) -> None:
    """Start the bare "GPU host" of inventories/local as container `name` (labelled `label`): host networking, what
    its own dockerd needs, writable cgroups, and the signed stand-in of NVIDIA's toolkit repository (built with
    scripts/fake_apt_repo.py under `work`) where the local inventory points the toolkit role. Nothing else: no
    Docker, no GPU. AssertionError with the failing step's words."""
    toolkit_repo = work / "toolkit-repo"
    spec = REPO / "roles/nvidia_container_toolkit/molecule/default/fake-repo.json"
    built = subprocess.run(
        [sys.executable, str(REPO / "scripts/fake_apt_repo.py"), "--out", str(toolkit_repo), "--spec", str(spec)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    started = docker("run", "--detach", "--name", name, "--label", label, *engine_host_flags(), DEBIAN_12,
                     "sleep", "infinity")  # fmt: skip
    assert started.returncode == 0, started.stderr
    rc, out = inside(name, f"set -eu; {WRITABLE_CGROUPS}; mkdir -p /srv/primenet-toolkit-repo/amd64")
    assert rc == 0, out
    for source, target in ((f"{toolkit_repo}/.", "/srv/primenet-toolkit-repo/amd64/"),
                           (f"{toolkit_repo}/key.asc", "/srv/primenet-toolkit-key.asc")):  # fmt: skip
        copied = docker("cp", source, f"{name}:{target}")
        assert copied.returncode == 0, copied.stderr
    rc, out = inside(name, "command -v dockerd docker || true")
    assert (rc, out) == (0, ""), f"not a bare host: {out}"


def local_inventory_env(devnet_dir: Path, host: str) -> dict[str, str]:
    """The environment in which `primenet devnet up` starts a devnet on free ports in `devnet_dir`, and in which
    inventories/local finds that devnet (by the same PRIMENET_DEVNET_* settings) and the host container `host`."""
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        "PRIMENET_DEVNET_STATE_DIR": str(devnet_dir),
        **{f"PRIMENET_DEVNET_{name}_PORT": str(free_port()) for name in DEVNET_SERVICES},
        "PRIMENET_GPU_HOST_CONTAINER": host,
        "ANSIBLE_COLLECTIONS_PATH": str(REPO / ".cache/collections"),
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_NOCOLOR": "1",
    }
    env.pop("PRIMENET_PROVIDER_KEY", None)  # the inventory then reads the devnet's key file
    return env
