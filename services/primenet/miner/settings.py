"""The miner's settings: `PRIMENET_*` environment variables or a `.env` file.

The two private keys are not settings fields: they come from `PRIMENET_PROVIDER_KEY` / `PRIMENET_NODE_KEY` or
from 0600 files named here (`load_keys`), and are never echoed by a settings dump.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from eth_account.signers.local import LocalAccount
from pydantic import Field, field_validator

from primenet.core.keys import account_from_key, load_key
from primenet.core.nodeaddr import canonical_ip
from primenet.core.settings import ServiceSettings

PROVIDER_KEY_ENV = "PRIMENET_PROVIDER_KEY"
NODE_KEY_ENV = "PRIMENET_NODE_KEY"
# The names `miner.solver.select_backend` knows; checked with the settings, so a typo stops `miner run` before any
# transaction instead of after registering on chain.
ChallengeBackend = Literal["auto", "torch", "cupy", "numpy"]


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
    heartbeat_max_backoff_s: float = Field(60.0, gt=0, description="longest wait after repeated failures")
    whitelist_poll_s: float = Field(10.0, gt=0, description="how often to check whether the provider is whitelisted")
    whitelist_timeout_s: float = Field(0.0, ge=0, description="give up waiting for the whitelist after this (0: never)")
    discovery_check_interval_s: float = Field(60.0, gt=0, description="how often IP and specs are re-checked")
    discovery_refresh_s: float = Field(600.0, gt=0, description="re-upload an unchanged record this often anyway")
    role_cache_s: float = Field(30.0, ge=0, description="how long an on-chain role or pool-owner answer is reused")
    challenge_backend: ChallengeBackend = Field("auto", description="matmul backend for challenges")
    challenge_state_ttl_s: float = Field(900.0, gt=0, description="how long a round-1 product waits for round 2")
    max_pending_challenges: int = Field(2, ge=1, description="round-1 products kept in memory at most")

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
