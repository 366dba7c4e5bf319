"""Settings shared by every service: env prefix `PRIMENET_`, `.env` files, nested via `__`."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from primenet.core.auth import AuthPolicy


class ServiceSettings(BaseSettings):
    """Base class of each service's settings; e.g. `PRIMENET_AUTH__TIMESTAMP_WINDOW_S=30`."""

    model_config = SettingsConfigDict(
        env_prefix="PRIMENET_", env_file=".env", env_nested_delimiter="__", extra="ignore"
    )

    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis for nonces, rate limits, state")
    rpc_url: str = Field("http://127.0.0.1:8545", description="JSON-RPC endpoint of the chain")
    chain_id: int = Field(31337, ge=0, description="refuse requests signed for any other chain")
    host: str = Field("127.0.0.1", description="address the HTTP server binds")
    port: int = Field(8000, ge=1, le=65535)
    log_level: str = "info"
    auth: AuthPolicy = Field(default_factory=AuthPolicy)
