"""Service apps and audiences the integration tests build against the session devnet (real apps, real settings)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from fastapi import FastAPI

from primenet.chain.deployment import Deployment
from primenet.core.auth import orchestrator_audience
from primenet.core.models import ComputeSpecs
from primenet.devnet.accounts import role_account
from primenet.devnet.local import DevnetState
from primenet.devnet.processes import free_port
from primenet.miner.app import create_app as create_miner
from primenet.miner.settings import MinerKeys, MinerSettings
from primenet.orchestrator.settings import OrchestratorSettings

MINER_SPECS = ComputeSpecs(cpu_cores=4, ram_mib=8192)


def pool_audience(devnet: DevnetState, pool_id: int = 0) -> str:
    """What a heartbeat to the orchestrator of `pool_id` of the session devnet is signed for."""
    return orchestrator_audience(Deployment.load(Path(devnet.deployment_file)).address("ComputePool"), pool_id)


def orchestrator_settings(
    devnet: DevnetState, *, discovery_url: str, prefix: str, port: int, admin_token: str, **changes: Any
) -> OrchestratorSettings:
    """An orchestrator of the session devnet on `port` with timers at test speed (beats every 0.3 s, Unhealthy
    after 1.5 s, Dead after 3 s, a lost node's task moved after 1 s); `changes` override any field."""
    fields: dict[str, Any] = {
        "redis_url": devnet.redis_url,
        "rpc_url": devnet.rpc_url,
        "deployment_file": Path(devnet.deployment_file),
        "discovery_url": discovery_url,
        "admin_token": admin_token,
        "public_url": f"http://127.0.0.1:{port}",
        "heartbeat_interval_s": 0.3,
        "unhealthy_after_s": 1.5,
        "dead_after_s": 3.0,
        "waiting_timeout_s": 15.0,
        "reassign_grace_s": 1.0,
        "invite_interval_s": 0.3,
        "invite_retry_base_s": 0.5,
        "invite_retry_max_s": 2.0,
        "feed_timeout_s": 1.0,
        "schedule_interval_s": 1.0,
        "key_prefix": prefix,
    }
    return OrchestratorSettings(**(fields | changes))


def miner_app(
    devnet: DevnetState, rpc_url: str, tmp_path: Path, *, node: LocalAccount | None = None, **settings_changes: Any
) -> tuple[FastAPI, MinerSettings, LocalAccount]:
    """A miner of `node` (a fresh key if None) under the devnet's provider, its loops idle (no discovery to publish
    to); `settings_changes` override the settings (e.g. `port`)."""
    node = node or Account.create()
    fields: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": free_port(),
        "rpc_url": rpc_url,
        "deployment_file": Path(devnet.deployment_file),
        "discovery_url": f"http://127.0.0.1:{free_port()}",
        "pool_id": 0,
        "storage_path": tmp_path / "storage",
        "state_dir": tmp_path / "state",
        "discovery_check_interval_s": 3600,
        "challenge_backend": "numpy",
        "role_cache_s": 30,
    }
    settings = MinerSettings(**(fields | settings_changes))
    keys = MinerKeys(provider=role_account("provider"), node=node)
    return create_miner(settings, keys, MINER_SPECS), settings, node
