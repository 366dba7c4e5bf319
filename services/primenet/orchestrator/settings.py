"""The orchestrator's settings: `PRIMENET_*` environment variables or a `.env` file.

The compute manager key is not a settings field: it comes from `PRIMENET_MANAGER_KEY` or the 0600 file named by
`PRIMENET_MANAGER_KEY_FILE` (`load_manager_account`), so a settings dump never shows it.
"""

from __future__ import annotations

from pathlib import Path

from eth_account.signers.local import LocalAccount
from pydantic import Field, SecretStr, field_validator, model_validator

from primenet.core.admin import refuse_weak_token
from primenet.core.keys import account_from_key, load_key
from primenet.core.settings import ServiceSettings

MANAGER_KEY_ENV = "PRIMENET_MANAGER_KEY"


class OrchestratorSettings(ServiceSettings):
    port: int = Field(8090, ge=1, le=65535)
    deployment_file: Path = Field(Path(".devnet/deployment.json"), description="contract addresses (chain deploy)")
    manager_key_file: Path | None = Field(None, description="0600 file with the compute manager key (else the env)")
    discovery_url: str = Field("http://127.0.0.1:8089", description="discovery service base URL")
    discovery_audience: str = Field("discovery", description="audience of signed requests to discovery")
    pool_id: int = Field(0, ge=0, description="the compute pool this orchestrator manages")
    admin_token: SecretStr | None = Field(None, description="bearer token for the admin routes; unset disables them")
    public_url: str = Field("http://127.0.0.1:8090", description="the URL miners send their heartbeats to")

    heartbeat_interval_s: float = Field(
        10.0, gt=0, description="how often miners beat; the health pass runs twice as often"
    )
    unhealthy_after_s: float = Field(45.0, gt=0, description="no heartbeat this long: Healthy -> Unhealthy")
    dead_after_s: float = Field(120.0, gt=0, description="no heartbeat this long: -> Dead (then ejected on chain)")
    waiting_timeout_s: float = Field(120.0, gt=0, description="invited but silent this long: -> Discovered (re-invite)")
    reassign_grace_s: float = Field(60.0, ge=0, description="a lost node keeps its task this long after its last beat")
    eject_dead: bool = Field(True, description="call ejectNode for Dead nodes still in the pool")
    store_guard: bool = Field(
        True,
        description="hold every node's task when the store is found empty while the pool has nodes on chain, until"
        " an operator confirms (false: take any store as it is; only for tests that share one pool)",
    )

    invite_expiry_s: int = Field(600, ge=10, description="how long a signed invite is accepted on chain")
    invite_concurrency: int = Field(32, ge=1, le=1024, description="invites in flight at once")
    invite_interval_s: float = Field(2.0, gt=0, description="how often Discovered nodes are looked for")
    invite_on_discovery: bool = Field(
        True, description="also run an invite round as soon as a node becomes Discovered (else only every interval)"
    )
    invite_retry_base_s: float = Field(5.0, gt=0, description="wait after a failed invite; doubles with each failure")
    invite_retry_max_s: float = Field(300.0, gt=0, description="longest wait between invites of one node")
    miner_timeout_s: float = Field(
        30.0, gt=0, description="deadline of one whole call to a miner, reply included (an invite waits for a join tx)"
    )
    miner_max_reply_bytes: int = Field(
        8 << 20, ge=1024, description="largest reply body read from a miner; a larger one fails the call"
    )

    feed_timeout_s: float = Field(25.0, ge=0, le=30, description="long-poll wait on discovery's change feed")
    resync_interval_s: float = Field(300.0, gt=0, description="full re-listing of the pool's nodes this often")
    schedule_interval_s: float = Field(
        30.0, gt=0, description="the scheduler's safety-net pass (it also runs on every change and grace expiry)"
    )
    chain_check_interval_s: float = Field(
        5.0, gt=0, description="how often the pool contract's membership logs are read (chain watch)"
    )
    chain_resync_interval_s: float = Field(
        300.0, gt=0, description="every known node's pool membership and blacklisting re-read this often"
    )
    nudge_max: int = Field(
        64,
        ge=0,
        description="nodes whose assignment changed that are told to beat at once, per scheduler pass (0: off)",
    )
    nudge_timeout_s: float = Field(2.0, gt=0, description="how long a nudge to a miner may take")
    key_prefix: str = Field("orch", pattern=r"^[a-z0-9_]{1,32}$", description="Redis key prefix")

    _refuse_weak_token = field_validator("admin_token")(refuse_weak_token)

    @field_validator("discovery_url", "public_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @model_validator(mode="after")
    def _ordered_thresholds(self) -> OrchestratorSettings:
        if not self.heartbeat_interval_s < self.unhealthy_after_s < self.dead_after_s:
            raise ValueError("need heartbeat_interval_s < unhealthy_after_s < dead_after_s")
        return self


def load_manager_account(settings: OrchestratorSettings) -> LocalAccount:
    """The pool's compute manager key from the environment or its 0600 file; errors name no key material."""
    return account_from_key(load_key(MANAGER_KEY_ENV, settings.manager_key_file))
