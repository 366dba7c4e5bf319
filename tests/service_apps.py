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

MINER_SPECS = ComputeSpecs(cpu_cores=4, ram_mib=8192)


def pool_audience(devnet: DevnetState, pool_id: int = 0) -> str:
    """What a heartbeat to the orchestrator of `pool_id` of the session devnet is signed for."""
    return orchestrator_audience(Deployment.load(Path(devnet.deployment_file)).address("ComputePool"), pool_id)


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
