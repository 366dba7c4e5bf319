"""The miner's discovery record: uploaded once, re-uploaded only when its IP or specs change."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from eth_account.signers.local import LocalAccount

from primenet.core.models import ComputeSpecs
from primenet.devnet.accounts import role_account
from primenet.devnet.local import DevnetState
from primenet.devnet.processes import free_port
from primenet.devnet.serve import serve_in_thread
from primenet.discovery.app import create_app
from primenet.discovery.settings import DiscoverySettings
from primenet.miner.publisher import DiscoveryPublisher

NewNode = Callable[..., Awaitable[LocalAccount]]  # the `new_node` fixture (tests/integration/conftest.py)


async def test_publisher_uploads_only_changes(devnet: DevnetState, new_node: NewNode) -> None:
    node = await new_node()
    specs = {"value": ComputeSpecs(cpu_cores=8, ram_mib=32_000, storage_free_gb=100.2)}
    settings = DiscoverySettings(
        redis_url=devnet.redis_url,
        rpc_url=devnet.rpc_url,
        deployment_file=Path(devnet.deployment_file),
        key_prefix="publisher",
    )
    with serve_in_thread(create_app(settings), port=free_port()) as url:
        publisher = DiscoveryPublisher(
            discovery_url=url,
            node=node,
            provider=role_account("provider").address,
            pool_id=0,
            port=8091,
            public_ip="127.0.0.1",
            chain_id=devnet.chain_id,
            specs=lambda: specs["value"],
        )
        first = await publisher.publish()
        unchanged = await publisher.publish()
        specs["value"] = specs["value"].model_copy(update={"storage_free_gb": 100.7})  # same whole GB
        disk_noise = await publisher.publish()
        specs["value"] = specs["value"].model_copy(update={"ram_mib": 64_000})
        more_ram = await publisher.publish()
        publisher.public_ip = "127.0.0.9"
        moved = await publisher.publish()
    assert (first, unchanged, disk_noise, more_ram, moved) == ("registered", None, None, "updated", "updated")
