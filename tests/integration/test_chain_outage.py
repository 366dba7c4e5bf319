"""Chain outages are 503s, not 500s: discovery, the orchestrator and the miner in front of a chain node that fails
as real ones do (a JSON-RPC error for everything, a gateway's HTML page, a 502), then recovers.

The services' RPC goes through a loopback proxy to the session devnet's Anvil; the proxy plays each failure.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account

from primenet.core.auth import RequestSigner
from primenet.core.models import ComputeSpecs, NodeRecord
from primenet.core.redisdb import connect
from primenet.devnet.accounts import role_account
from primenet.devnet.local import DevnetState
from primenet.devnet.processes import free_port
from primenet.devnet.serve import serve_in_thread
from primenet.discovery.app import create_app as create_discovery
from primenet.discovery.settings import DiscoverySettings
from primenet.orchestrator.app import create_app as create_orchestrator
from primenet.orchestrator.models import NodeStatus
from primenet.orchestrator.settings import OrchestratorSettings
from primenet.orchestrator.store import OrchestratorStore
from rpc_counter import FAULTS, CountingRpcProxy
from service_apps import miner_app
from waiting import until

pytestmark = pytest.mark.integration

CHAIN_ID = 31337
TOKEN = "chain-outage-admin-token-0123"
ADMIN = {"authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def rpc(devnet: DevnetState) -> Iterator[tuple[str, CountingRpcProxy]]:
    proxy = CountingRpcProxy(devnet.rpc_url)
    with serve_in_thread(proxy, port=free_port()) as url:
        yield url, proxy


def error(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, str(response.json()["error"]["code"])


def upload(node: Any) -> dict[str, Any]:
    record = NodeRecord(
        node=node.address, provider=role_account("provider").address, ip="127.0.0.1", port=8091, pool_id=0,
        specs=ComputeSpecs(cpu_cores=2, ram_mib=4096),
    )  # fmt: skip
    return record.model_dump(mode="json")


@pytest.mark.parametrize("fault", sorted(FAULTS))
async def test_every_chain_reading_route_answers_503_while_the_chain_fails_and_works_after(
    fault: str, devnet: DevnetState, rpc: tuple[str, CountingRpcProxy], new_node: Any, tmp_path: Path
) -> None:
    rpc_url, proxy = rpc
    prefix = "out" + secrets.token_hex(4)
    discovery = create_discovery(
        DiscoverySettings(
            redis_url=devnet.redis_url, rpc_url=rpc_url, deployment_file=Path(devnet.deployment_file),
            admin_token=TOKEN, sync_interval_s=0.2, key_prefix=prefix,
        )
    )  # fmt: skip
    orchestrator_port = free_port()
    orchestrator = create_orchestrator(
        OrchestratorSettings(
            redis_url=devnet.redis_url, rpc_url=rpc_url, deployment_file=Path(devnet.deployment_file),
            discovery_url="http://127.0.0.1:9", admin_token=TOKEN, public_url=f"http://127.0.0.1:{orchestrator_port}",
            key_prefix=prefix + "o",
        ),
        role_account("orchestrator"),
    )  # fmt: skip
    miner, miner_settings, miner_node = miner_app(devnet, rpc_url, tmp_path)
    node = await new_node()
    banned = Account.create()
    redis = connect(devnet.redis_url)
    try:
        store = OrchestratorStore(redis, prefix=orchestrator.state.store.prefix)
        record = NodeRecord.model_validate(upload(banned))
        await store.upsert_listed(record, listed_at=time.time(), now=time.time())
    finally:
        await redis.aclose()

    with (
        serve_in_thread(discovery, port=free_port()) as discovery_url,
        serve_in_thread(orchestrator, port=orchestrator_port) as orchestrator_url,
        serve_in_thread(miner, port=miner_settings.port) as miner_url,
    ):
        node_signer = RequestSigner(node, audience="discovery", chain_id=CHAIN_ID)
        owner = RequestSigner(role_account("orchestrator"), audience=miner_node.address.lower(), chain_id=CHAIN_ID)
        invite = {
            "domain_id": 0, "pool_id": 0, "node": miner_node.address, "nonce": 1, "expiry": 2**40,
            "signature": "0x" + "11" * 65, "orchestrator_url": orchestrator_url,
        }  # fmt: skip

        async def calls() -> dict[str, httpx.Response]:
            async with (
                httpx.AsyncClient(base_url=discovery_url, auth=node_signer, timeout=30) as to_discovery,
                httpx.AsyncClient(base_url=orchestrator_url, headers=ADMIN, timeout=30) as to_orchestrator,
                httpx.AsyncClient(base_url=miner_url, auth=owner, timeout=30) as to_miner,
            ):
                return {
                    "discovery upload": await to_discovery.put("/api/nodes", json=upload(node)),
                    "orchestrator ban": await to_orchestrator.post(f"/nodes/{banned.address}/ban"),
                    "miner invite": await to_miner.post("/invite", json=invite),
                }

        proxy.fault = fault
        failing = await calls()
        for name, response in failing.items():
            assert error(response) == (503, "chain_unavailable"), (name, response.text)
            assert response.headers["Retry-After"] == "5"

        async def sync_error() -> str | None:
            async with httpx.AsyncClient(base_url=discovery_url, headers=ADMIN) as http:
                body = (await http.get("/health")).json()
            return body["details"]["chain_sync"]["last_error"] if body["status"] == "degraded" else None

        await until(sync_error, "discovery's chain sync to report the outage")

        proxy.fault = None
        recovered = await calls()
        assert recovered["discovery upload"].status_code == 200, recovered["discovery upload"].text
        assert recovered["orchestrator ban"].status_code == 200, recovered["orchestrator ban"].text
        # The miner's invite now reaches the contract, which refuses the made-up signature: a 4xx, not a 503.
        assert 400 <= recovered["miner invite"].status_code < 500, recovered["miner invite"].text
        assert error(recovered["miner invite"]) != (503, "chain_unavailable")

        async def sync_recovered() -> bool | None:
            async with httpx.AsyncClient(base_url=discovery_url, headers=ADMIN) as http:
                body = (await http.get("/health")).json()
            return True if body["status"] == "ok" and body["details"]["chain_sync"]["last_error"] is None else None

        await until(sync_recovered, "discovery's chain sync to resume")
    redis = connect(devnet.redis_url)
    try:
        assert (await OrchestratorStore(redis, prefix=store.prefix).node(banned.address)).status == NodeStatus.BANNED  # type: ignore[union-attr]
    finally:
        await redis.aclose()
