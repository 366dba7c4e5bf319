"""The miner's discovery record: uploaded once, re-uploaded only when its IP or specs change."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
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


async def test_a_node_reads_its_own_record_or_learns_it_has_none(
    devnet: DevnetState, new_node: NewNode, tmp_path: Path
) -> None:
    # The stranger is on chain but never published: discovery has no record of it.
    node, stranger = await new_node(), await new_node()
    settings = DiscoverySettings(
        redis_url=devnet.redis_url,
        rpc_url=devnet.rpc_url,
        deployment_file=Path(devnet.deployment_file),
        key_prefix="own_record",
    )
    specs = ComputeSpecs(cpu_cores=4, ram_mib=8_000, storage_free_gb=50.0)
    with serve_in_thread(create_app(settings), port=free_port()) as url:

        def publisher(account: LocalAccount) -> DiscoveryPublisher:
            return DiscoveryPublisher(
                discovery_url=url,
                node=account,
                provider=role_account("provider").address,
                pool_id=0,
                port=8091,
                public_ip="127.0.0.1",
                chain_id=devnet.chain_id,
                specs=lambda: specs,
            )

        before = await publisher(node).own_record()
        await publisher(node).publish()
        after = await publisher(node).own_record()
        # The same through the CLI, with the node's settings and keys in the environment (never on the command line).
        env = {
            **os.environ,
            "PRIMENET_DISCOVERY_URL": url,
            "PRIMENET_RPC_URL": devnet.rpc_url,
            "PRIMENET_DEPLOYMENT_FILE": devnet.deployment_file,
            "PRIMENET_NODE_KEY": node.key.hex(),
            "PRIMENET_PROVIDER_KEY": role_account("provider").key.hex(),
            "PRIMENET_STORAGE_PATH": str(tmp_path),
        }
        listed = await asyncio.to_thread(_primenet, env, "miner", "record", "--json")
        env["PRIMENET_NODE_KEY"] = stranger.key.hex()
        unlisted = await asyncio.to_thread(_primenet, env, "miner", "record", "--json")

    assert before is None
    assert after is not None
    assert (after["node"], after["ip"], after["port"]) == (node.address.lower(), "127.0.0.1", 8091)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == after
    assert unlisted.returncode == 1
    assert unlisted.stderr.strip() == f"error: discovery ({url}) has no record of node {stranger.address}"


def _primenet(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    binary = str(Path(sys.executable).with_name("primenet"))
    return subprocess.run([binary, *args], env=env, capture_output=True, text=True, timeout=60, check=False)
