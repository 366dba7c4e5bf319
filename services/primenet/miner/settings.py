"""The miner's settings: `PRIMENET_*` environment variables or a `.env` file.

The two private keys are not settings fields: they come from `PRIMENET_PROVIDER_KEY` / `PRIMENET_NODE_KEY` or
from 0600 files named here (`load_keys`), and are never echoed by a settings dump.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from eth_account.signers.local import LocalAccount
from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from primenet.core.keys import account_from_key, load_key
from primenet.core.nodeaddr import canonical_ip
from primenet.core.settings import ServiceSettings
from primenet.miner.firewall import DEFAULT_BLOCKED, cidr
from primenet.miner.isolation import (
    DEFAULT_NETWORK,
    NetworkPolicy,
    TaskPolicy,
    capability_name,
    host_cpus,
    host_memory_mib,
    network_name,
)

PROVIDER_KEY_ENV = "PRIMENET_PROVIDER_KEY"
NODE_KEY_ENV = "PRIMENET_NODE_KEY"
# The names `miner.solver.select_backend` knows; checked with the settings, so a typo stops `miner run` before any
# transaction instead of after registering on chain.
ChallengeBackend = Literal["auto", "torch", "cupy", "numpy"]
# Lists from the environment are comma-separated (`PRIMENET_TASK_CAP_ADD=NET_BIND_SERVICE,SYS_PTRACE`) or JSON.
CommaList = Annotated[list[str], NoDecode]
DEFAULT_MEMORY_SHARE = 0.9  # a task without a memory request gets this share of the host's memory at most


def _split(value: object) -> object:
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


class MinerSettings(ServiceSettings):
    host: str = Field("0.0.0.0", description="address the miner's API binds")
    port: int = Field(8091, ge=1, le=65535)
    deployment_file: Path = Field(Path(".devnet/deployment.json"), description="contract addresses (chain deploy)")
    discovery_url: str = Field("http://127.0.0.1:8089", description="discovery service base URL")
    pool_id: int = Field(0, ge=0, description="the compute pool this node offers itself to")
    public_ip: str = Field(
        "127.0.0.1",
        description='address published to discovery; "auto": the local address that routes to discovery '
        "(re-read at every check, so a changed address is re-published)",
    )
    public_port: int | None = Field(None, ge=1, le=65535, description="published port (default: `port`)")
    storage_path: Path = Field(Path("/var/lib/primenet"), description="task data (created 0700)")
    state_dir: Path = Field(Path("/var/lib/primenet/state"), description="the miner's state file lives here")
    visible_devices: str | None = Field(None, description='GPUs to offer: "0,2", UUIDs, "all" (default), "none"')
    provider_key_file: Path | None = Field(None, description="0600 file with the provider key (else the env var)")
    node_key_file: Path | None = Field(None, description="0600 file with the node key (else the env var)")
    heartbeat_interval_s: float = Field(10.0, gt=0, description="seconds between heartbeats")
    heartbeat_timeout_s: float = Field(20.0, gt=0, description="one heartbeat request's time limit")
    # Two intervals: a miner that loses one beat tries again 20 s later and every 20 s after that, so k lost beats
    # in a row are 10 + 20k s of silence; a longer backoff made three lost beats (1e-6 of beats at 1% loss) reach
    # the orchestrator's 120 s Dead threshold and an ejection (bench/README.md, "Default timers").
    heartbeat_max_backoff_s: float = Field(
        20.0, gt=0, description="longest wait after repeated failures (at most about the orchestrator's thresholds)"
    )
    whitelist_poll_s: float = Field(10.0, gt=0, description="how often to check whether the provider is whitelisted")
    whitelist_timeout_s: float = Field(0.0, ge=0, description="give up waiting for the whitelist after this (0: never)")
    discovery_check_interval_s: float = Field(60.0, gt=0, description="how often IP and specs are re-checked")
    discovery_refresh_s: float = Field(600.0, gt=0, description="re-upload an unchanged record this often anyway")
    role_cache_s: float = Field(30.0, ge=0, description="how long an on-chain role or pool-owner answer is reused")
    challenge_backend: ChallengeBackend = Field("auto", description="matmul backend for challenges")
    challenge_state_ttl_s: float = Field(900.0, gt=0, description="how long a round-1 product waits for round 2")
    max_pending_challenges: int = Field(2, ge=1, description="round-1 products kept in memory at most")
    # --- task isolation (miner.isolation, miner.firewall) ---
    task_network: NetworkPolicy = Field(
        "isolated", description='"isolated" (bridge network + firewall), "none", or "host" (explicit opt-in)'
    )
    task_network_name: str = Field(DEFAULT_NETWORK, description="the isolated network and its bridge interface")
    task_network_internal: bool = Field(False, description="isolated network without any route out (no NAT)")
    task_blocked_cidrs: CommaList = Field(
        default_factory=lambda: list(DEFAULT_BLOCKED),
        description="destinations the firewall drops for tasks besides the host itself (169.254.0.0/16 always)",
    )
    task_cap_add: CommaList = Field(default_factory=list, description="capabilities added after cap_drop ALL")
    task_allow_root: bool = Field(False, description="run a task as root when it asks for it (else refused)")
    task_pids_limit: int = Field(512, ge=16, le=1 << 22, description="processes and threads per task")
    task_read_only_rootfs: bool = Field(False, description="read-only root filesystem with a tmpfs /tmp")
    task_tmpfs_mib: int = Field(1024, ge=1, le=1 << 20, description="size of that /tmp")
    task_max_cpus: float | None = Field(None, gt=0, le=4096, description="CPU cap (default: the host's CPUs)")
    task_max_memory_mib: int | None = Field(
        None, ge=16, le=1 << 30, description="memory cap in MiB (default: 90% of the host's memory)"
    )
    task_max_shm_mib: int | None = Field(None, ge=1, le=1 << 20, description="shared memory cap in MiB (default: none)")
    task_image_allowlist: CommaList = Field(default_factory=list, description="fnmatch patterns (empty: any)")
    task_registry_allowlist: CommaList = Field(default_factory=list, description="fnmatch patterns (empty: any)")

    @field_validator(
        "task_blocked_cidrs", "task_cap_add", "task_image_allowlist", "task_registry_allowlist", mode="before"
    )
    @classmethod
    def _comma_list(cls, value: object) -> object:
        return _split(value)

    @field_validator("task_cap_add")
    @classmethod
    def _capabilities(cls, value: list[str]) -> list[str]:
        return [capability_name(item) for item in value]

    @field_validator("task_blocked_cidrs")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        return [cidr(item) for item in value]

    @field_validator("task_network_name")
    @classmethod
    def _network_name(cls, value: str) -> str:
        return network_name(value)

    def task_policy(self) -> TaskPolicy:
        """The provider's task policy; unset CPU and memory caps become the host's CPUs and 90% of its memory."""
        memory = self.task_max_memory_mib or max(16, int(host_memory_mib() * DEFAULT_MEMORY_SHARE))
        return TaskPolicy(
            network=self.task_network,
            network_name=self.task_network_name,
            network_internal=self.task_network_internal,
            cap_add=tuple(self.task_cap_add),
            allow_root=self.task_allow_root,
            pids_limit=self.task_pids_limit,
            read_only_rootfs=self.task_read_only_rootfs,
            tmpfs_mib=self.task_tmpfs_mib,
            max_cpus=self.task_max_cpus or host_cpus(),
            max_memory_mib=memory,
            max_shm_mib=self.task_max_shm_mib,
            image_allowlist=tuple(self.task_image_allowlist),
            registry_allowlist=tuple(self.task_registry_allowlist),
        )

    @field_validator("public_ip")
    @classmethod
    def _ip_or_auto(cls, value: str) -> str:
        # Discovery takes only IP literals (no host names): say so at start, not at the first upload.
        return value if value == "auto" else canonical_ip(value)

    @property
    def published_port(self) -> int:
        return self.public_port or self.port

    @property
    def state_file(self) -> Path:
        return self.state_dir / "miner-state.json"


@dataclass(frozen=True)
class MinerKeys:
    provider: LocalAccount  # stakes, adds the node, joins pools
    node: LocalAccount  # the node's identity: signs its record, heartbeats and its key-ownership proof


def load_keys(settings: MinerSettings) -> MinerKeys:
    """Both keys from the environment or their 0600 files; raises `PrivateKeyError` (naming no key material)."""
    provider = account_from_key(load_key(PROVIDER_KEY_ENV, settings.provider_key_file))
    node = account_from_key(load_key(NODE_KEY_ENV, settings.node_key_file))
    return MinerKeys(provider=provider, node=node)
