"""Discovery's settings: `PRIMENET_*` environment variables or a `.env` file."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator

from primenet.core.admin import refuse_weak_token
from primenet.core.settings import ServiceSettings


class DiscoverySettings(ServiceSettings):
    port: int = Field(8089, ge=1, le=65535)
    audience: str = Field("discovery", description="the name signed requests must be addressed to")
    deployment_file: Path = Field(Path(".devnet/deployment.json"), description="contract addresses (chain deploy)")
    admin_token: SecretStr | None = Field(None, description="bearer token for admin reads; unset disables them")
    max_nodes_per_ip: int = Field(1, ge=1, description="active (in-pool) nodes allowed behind one IP address")
    role_cache_s: float = Field(30.0, ge=0, description="how long an on-chain role or pool-owner answer is reused")
    sync_interval_s: float = Field(2.0, gt=0, description="how often chain events are read")
    full_resync_interval_s: float = Field(600.0, gt=0, description="how often every node's flags are re-read")
    feed_max_len: int = Field(100_000, ge=100, description="change-feed events kept (older cursors must resync)")
    key_prefix: str = Field("disc", pattern=r"^[a-z0-9_]{1,32}$")

    _refuse_weak_token = field_validator("admin_token")(refuse_weak_token)
