"""One failed ejection does not hold back the others: two Dead nodes of the pool on the session devnet's chain, the
chain failing every call about the first one (a loopback RPC proxy in front of Anvil)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount

from primenet.chain.contracts import Network
from primenet.core.models import ComputeSpecs, NodeRecord
from primenet.core.redisdb import connect
from primenet.devnet.accounts import role_account
from primenet.devnet.local import DevnetState
from primenet.devnet.processes import free_port
from primenet.devnet.serve import serve_in_thread
from primenet.orchestrator.app import create_app
from primenet.orchestrator.models import NodeStatus
from primenet.orchestrator.settings import OrchestratorSettings
from primenet.orchestrator.store import OrchestratorStore
from rpc_counter import CountingRpcProxy
from waiting import wait_for

pytestmark = pytest.mark.integration

NewNode = Callable[..., Awaitable[LocalAccount]]


async def test_a_failing_ejection_does_not_stop_the_next_one(
    devnet: DevnetState, network: Network, new_node: NewNode
) -> None:
    nodes = sorted([await new_node(join_pool=0) for _ in range(2)], key=lambda node: node.address.lower())
    stuck, ejectable = nodes  # the pass meets `stuck` first (nodes are read in address order)
    prefix = "ej" + secrets.token_hex(4)
    redis = connect(devnet.redis_url)
    store = OrchestratorStore(redis, prefix=prefix)
    now = time.time()
    for node in nodes:
        record = NodeRecord(
            node=node.address, provider=role_account("provider").address, ip="127.0.0.1", port=9, pool_id=0,
            specs=ComputeSpecs(cpu_cores=1),
        )  # fmt: skip
        await store.upsert_listed(record, listed_at=now, now=now)
        await store.transition(node.address, NodeStatus.DEAD, now=now)

    proxy = CountingRpcProxy(devnet.rpc_url)
    proxy.fail_matching = stuck.address.lower().removeprefix("0x")  # every call that names it fails
    with serve_in_thread(proxy, port=free_port()) as rpc_url:
        port = free_port()
        settings = OrchestratorSettings(
            redis_url=devnet.redis_url, rpc_url=rpc_url, deployment_file=Path(devnet.deployment_file),
            discovery_url="http://127.0.0.1:9", public_url=f"http://127.0.0.1:{port}", key_prefix=prefix,
            heartbeat_interval_s=0.4,
        )  # fmt: skip
        with serve_in_thread(create_app(settings, role_account("orchestrator")), port=port):

            async def status(node: LocalAccount) -> NodeStatus | None:
                row = await store.node(node.address)
                return None if row is None else row.status

            async def ejectable_ejected() -> bool:
                return await status(ejectable) == NodeStatus.EJECTED

            await wait_for(ejectable_ejected, "the second Dead node to be ejected", timeout_s=30)
            assert not await network.is_node_in_pool(0, ejectable.address)
            assert await status(stuck) == NodeStatus.DEAD
            assert await network.is_node_in_pool(0, stuck.address)

            proxy.fail_matching = None  # the chain answers about it again: the next pass ejects it too

            async def stuck_ejected() -> bool:
                return await status(stuck) == NodeStatus.EJECTED

            await wait_for(stuck_ejected, "the first Dead node to be ejected once the chain answers", timeout_s=30)
            assert not await network.is_node_in_pool(0, stuck.address)
    await redis.aclose()
