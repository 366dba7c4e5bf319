"""How a task is fenced in on the provider's host: the provider's `TaskPolicy` and the pure decision `isolate()`.

`isolate(spec, policy)` turns a task into the isolation part of Docker's create arguments (network, user,
capabilities, limits, root filesystem), or into a `Refusal` with a reason the heartbeat reports. It does no I/O;
the runner merges its `config` into the container's arguments and creates the task network when needed.

Network policies:
- `isolated` (the production default): the dedicated bridge network `network_config()` describes, with
  inter-container traffic off; `miner.firewall` drops what a task sends to the host itself, to link-local and
  metadata addresses and to the provider's LAN (`primenet miner isolation --apply`).
- `none`: no network at all beyond the container's own loopback.
- `host`: the host's network namespace (the task reaches every loopback service). Only by explicit opt-in: the
  devnet and the tests use it because their Docker engines run without a bridge.

Contract: a task never gets more than the policy allows. Capabilities are `cap_drop ALL` plus `cap_add`; the user
is 65534:65534 unless the task asks for root and the policy allows it (asking without being allowed is refused);
CPU, memory and shared memory are the task's requests capped by the policy's maxima (a cap, never a refusal; a
note says so), and the maxima when the task asks for none; the image must match the image allowlist and its
registry the registry allowlist (empty lists allow any).
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from docker.auth import resolve_repository_name
from docker.utils import parse_repository_tag

from primenet.core.models import TaskSpec

NetworkPolicy = Literal["isolated", "none", "host"]
NOBODY = "65534:65534"
ROOT = "0:0"
DEFAULT_NETWORK = "primenet-tasks"
# Docker's option names for a bridge network (moby's `bridge` driver).
ICC_OPTION = "com.docker.network.bridge.enable_icc"
BRIDGE_NAME_OPTION = "com.docker.network.bridge.name"
MASQUERADE_OPTION = "com.docker.network.bridge.enable_ip_masquerade"
_CAPABILITY = re.compile(r"^[A-Z][A-Z_]{1,31}$")
_INTERFACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$")  # Linux interface names: at most 15 characters


def capability_name(value: str) -> str:
    """`net_bind_service` or `CAP_NET_BIND_SERVICE` -> `NET_BIND_SERVICE`; ValueError for anything else."""
    name = value.strip().upper().removeprefix("CAP_")
    if not _CAPABILITY.match(name) or name == "ALL":
        raise ValueError(f"{value!r} is not a capability name (e.g. NET_BIND_SERVICE)")
    return name


def network_name(value: str) -> str:
    """The task network's name, which is also its bridge interface's name (so the firewall can match it)."""
    if not _INTERFACE.match(value):
        raise ValueError(f"{value!r} is not usable as a network interface name (1-15 of A-Z a-z 0-9 _ . -)")
    return value


@dataclass(frozen=True)
class TaskPolicy:
    """What a provider lets a task have. `None` maxima: no cap. Built from the miner's settings by
    `miner.settings.MinerSettings.task_policy()`; the defaults here are the safe ones."""

    network: NetworkPolicy = "isolated"
    network_name: str = DEFAULT_NETWORK
    network_internal: bool = False  # True: no route out at all (no masquerading)
    cap_add: tuple[str, ...] = ()
    allow_root: bool = False
    pids_limit: int = 512
    read_only_rootfs: bool = False
    tmpfs_mib: int = 1024  # the /tmp of a read-only root filesystem
    max_cpus: float | None = None
    max_memory_mib: int | None = None
    max_shm_mib: int | None = None
    image_allowlist: tuple[str, ...] = ()
    registry_allowlist: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        network_name(self.network_name)
        for name in self.cap_add:
            capability_name(name)
        if self.pids_limit < 1:
            raise ValueError("pids_limit must be at least 1")


@dataclass(frozen=True)
class Refusal:
    """The task is not run on this host; `reason` goes into the heartbeat's task message."""

    reason: str


@dataclass(frozen=True)
class Isolation:
    """The isolation part of `containers.create`'s keyword arguments, and remarks (e.g. a capped request)."""

    config: dict[str, Any]
    notes: tuple[str, ...] = field(default=())


def registry_of(image: str) -> str:
    """The registry host an image reference pulls from (Docker's default index for a bare name)."""
    repository, _ = parse_repository_tag(image)
    registry, _ = resolve_repository_name(repository)
    return str(registry)


def image_refusal(image: str, policy: TaskPolicy) -> str | None:
    """Why `image` may not run under `policy`, or None. Patterns are fnmatch patterns (`*`, `?`, `[...]`)."""
    if policy.image_allowlist and not any(fnmatch.fnmatchcase(image, p) for p in policy.image_allowlist):
        return f"image {image} is not in this provider's image allowlist"
    if policy.registry_allowlist:
        try:
            registry = registry_of(image)
        except Exception:  # the SDK's parse errors have no common base: any failure is a refusal
            return f"image {image} names no registry this provider can check"
        if not any(fnmatch.fnmatchcase(registry, p) for p in policy.registry_allowlist):
            return f"registry {registry} of image {image} is not in this provider's registry allowlist"
    return None


def _capped(requested: float | None, cap: float | None, what: str, unit: str, notes: list[str]) -> float | None:
    if requested is None:
        return cap
    if cap is not None and requested > cap:
        notes.append(f"{what} {requested:g}{unit} asked for, capped to {cap:g}{unit} by the provider")
        return cap
    return requested


def network_config(policy: TaskPolicy) -> dict[str, Any]:
    """Keyword arguments of `networks.create` for the `isolated` policy's bridge network."""
    options = {ICC_OPTION: "false", BRIDGE_NAME_OPTION: policy.network_name}
    if not policy.network_internal:
        options[MASQUERADE_OPTION] = "true"
    return {
        "name": policy.network_name,
        "driver": "bridge",
        "internal": policy.network_internal,
        "options": options,
        "labels": {"primenet.role": "tasks"},
    }


def network_mismatch(options: dict[str, str] | None, policy: TaskPolicy) -> str | None:
    """Why an existing network of the policy's name is not the one `network_config` makes, or None."""
    present = options or {}
    wanted = network_config(policy)["options"]
    for key in (ICC_OPTION, BRIDGE_NAME_OPTION):
        if present.get(key) != wanted[key]:
            return f"network {policy.network_name} exists with {key}={present.get(key)!r}, not {wanted[key]!r}"
    return None


def isolate(spec: TaskSpec, policy: TaskPolicy) -> Isolation | Refusal:
    """The isolation of `spec` under `policy`, or why it is refused (see the module's contract)."""
    refused = image_refusal(spec.image, policy)
    if refused is not None:
        return Refusal(refused)
    if spec.run_as_root and not policy.allow_root:
        return Refusal("the task asks to run as root, which this provider does not allow")
    notes: list[str] = []
    config: dict[str, Any] = {
        "user": ROOT if spec.run_as_root else NOBODY,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "privileged": False,
        "pids_limit": policy.pids_limit,
    }
    if policy.cap_add:
        config["cap_add"] = list(policy.cap_add)
    if policy.network == "isolated":
        config["network"] = policy.network_name
    else:
        config["network_mode"] = policy.network
    if policy.read_only_rootfs:
        config["read_only"] = True
        config["tmpfs"] = {"/tmp": f"rw,nosuid,nodev,size={policy.tmpfs_mib}m"}  # noqa: S108 - the task's own /tmp
    cpus = _capped(spec.cpu_limit, policy.max_cpus, "cpus", "", notes)
    if cpus is not None:
        config["nano_cpus"] = int(cpus * 1e9)
    memory = _capped(spec.memory_limit_mib, policy.max_memory_mib, "memory", " MiB", notes)
    if memory is not None:
        config["mem_limit"] = f"{int(memory)}m"
        config["memswap_limit"] = f"{int(memory)}m"  # the limit is not dodged through swap
    shm = _capped(spec.shm_size_mib, policy.max_shm_mib, "shm", " MiB", notes)
    config["shm_size"] = f"{int(shm or spec.shm_size_mib)}m"
    return Isolation(config=config, notes=tuple(notes))


def host_cpus() -> float:
    """The CPUs this process may use (the default cap of a task)."""
    return float(len(os.sched_getaffinity(0)))


def host_memory_mib() -> int:
    """Physical memory in MiB (a task's default cap is a share of it)."""
    return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2**20)
