"""The validator's settings: `PRIMENET_*` environment variables or a `.env` file.

The validator key is not a settings field: it comes from `PRIMENET_VALIDATOR_KEY` or from the 0600 file named by
`PRIMENET_VALIDATOR_KEY_FILE` (`load_validator_account`), so a settings dump never shows it.

Challenge size. Nodes without a GPU get `PRIMENET_CHALLENGE_N` (256, float32: sized for the devnet, whose miners
run on CPUs; numpy answers in milliseconds). Nodes that claim a GPU get `PRIMENET_GPU_CHALLENGE_N` (GPU_POOL_N =
16384): at that size the claimed device's multiply, not the host's O(n^2) work, decides whether the answer came
fast enough, so a CPU claiming a GPU is too slow (see `primenet.validator.verifier`).
"""

from __future__ import annotations

import enum
from pathlib import Path

from eth_account.signers.local import LocalAccount
from pydantic import Field, SecretStr, field_validator

from primenet.core.admin import refuse_weak_token
from primenet.core.challenge.wire import GPU_POOL_N, MAX_N, MatrixDtype
from primenet.core.keys import account_from_key, load_key
from primenet.core.settings import ServiceSettings

VALIDATOR_KEY_ENV = "PRIMENET_VALIDATOR_KEY"


class FailureAction(enum.StrEnum):
    """What happens to a node after `max_attempts` rejected challenges in a row."""

    LEAVE = "leave"  # stop challenging it; it stays unvalidated (can never join a pool)
    INVALIDATE = "invalidate"  # also call invalidateNode on chain (withdraws a validation it may hold)


class ValidatorSettings(ServiceSettings):
    port: int = Field(8093, ge=1, le=65535, description="the validator's own HTTP API (health, metrics)")
    deployment_file: Path = Field(Path(".devnet/deployment.json"), description="contract addresses (chain deploy)")
    validator_key_file: Path | None = Field(None, description="0600 file with the validator key (else the env var)")
    discovery_url: str = Field("http://127.0.0.1:8089", description="discovery service base URL")
    discovery_audience: str = Field("discovery", description="audience of signed requests to discovery")
    miner_audience: str | None = Field(
        None, description="audience of signed requests to miners; unset: each miner's own node address"
    )
    admin_token: SecretStr | None = Field(None, description="bearer token for GET /rejections; unset disables it")

    challenge_n: int = Field(256, ge=1, le=MAX_N, description="matrix size of a challenge")
    gpu_challenge_n: int = Field(GPU_POOL_N, ge=1, le=MAX_N, description="matrix size for nodes that claim a GPU")
    challenge_dtype: MatrixDtype = Field(MatrixDtype.FLOAT32, description="float64, float32, float16, bfloat16")
    challenge_deadline_s: float = Field(60.0, gt=0, le=3600, description="the commitment must arrive this soon")
    reveal_deadline_s: float = Field(30.0, gt=0, le=3600, description="the opening must arrive this soon after")
    connect_timeout_s: float = Field(5.0, gt=0, description="connecting to a miner; beyond it: unreachable")
    throughput_file: Path | None = Field(None, description="JSON/TOML overriding the GPU throughput table")

    concurrency: int = Field(4, ge=1, le=1024, description="challenges in flight at once")
    max_attempts: int = Field(3, ge=1, description="rejections in a row before the failure action")
    failure_action: FailureAction = FailureAction.LEAVE
    retry_base_s: float = Field(30.0, gt=0, description="wait after the first failure; doubles with each one")
    retry_max_s: float = Field(3600.0, gt=0, description="longest wait between attempts")
    retry_unreachable_base_s: float = Field(
        0.25, gt=0, description="wait after a first `unreachable` attempt (a miner still starting); doubles too"
    )
    feed_timeout_s: float = Field(25.0, ge=0, le=30, description="long-poll wait on discovery's change feed")
    resync_interval_s: float = Field(300.0, gt=0, description="full re-listing of unvalidated nodes this often")
    tick_s: float = Field(1.0, gt=0, description="how often due retries are looked for")
    rechallenge_interval_s: float = Field(21600.0, gt=0, description="validated nodes are challenged again this often")
    rechallenge_jitter_s: float = Field(3600.0, ge=0, description="a random extra wait, up to this, per re-challenge")
    rejections_kept: int = Field(500, ge=1, description="recent rejections kept for GET /rejections")
    key_prefix: str = Field("val", pattern=r"^[a-z0-9_]{1,32}$", description="Redis key prefix")

    _refuse_weak_token = field_validator("admin_token")(refuse_weak_token)

    @field_validator("discovery_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")


def load_validator_account(settings: ValidatorSettings) -> LocalAccount:
    """The VALIDATOR_ROLE key from the environment or its 0600 file; `PrivateKeyError` names no key material."""
    return account_from_key(load_key(VALIDATOR_KEY_ENV, settings.validator_key_file))
