"""Trust nothing a node says about the chain (issue 15, item 7), against the real devnet chain, Redis, discovery and
orchestrator on uvicorn.

- A "miner" (a loopback peer) that answers the invite with 200 but never joins the pool on chain, then heartbeats:
  before the fix its first beat made it Healthy and it could get work; now it stays Waiting with no task.
- A Healthy node with a task is blacklisted from the pool by a direct chain call of the pool's creator (not our ban
  route): before the fix the orchestrator never noticed and kept sending the task; now it loses it and is refused.
- A node removed from the registry on chain by its provider: before the fix discovery kept serving its record;
  now the record is dropped, with a `removed` event in the feed.
- A Waiting node beating while the chain is down gets 503 `chain_unavailable` and stays Waiting.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from redis.asyncio import Redis

from binding import bind_listed_specs
from hostile import answer, serving
from primenet.chain.contracts import Network
from primenet.chain.deployment import Deployment
from primenet.core.auth import RequestSigner, orchestrator_audience
from primenet.core.models import ComputeSpecs, Heartbeat, NodeRecord
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
from waiting import until, wait_for

NewNode = Callable[..., Awaitable[LocalAccount]]
TOKEN = "trust-admin-token-0123456789abcdef"
ADMIN = {"authorization": f"Bearer {TOKEN}"}
SPECS = ComputeSpecs(cpu_model="test cpu", cpu_cores=2, ram_mib=4096, storage_path="/tmp", storage_free_gb=10.0)
TASK = {"name": "work", "image": "busybox:1", "command": ["true"], "entrypoint": None, "env": {}, "gpus": 0,
        "nodes": "all", "requirements": ""}  # fmt: skip
provider = role_account("provider")
manager = role_account("orchestrator")


@pytest.fixture
def services(devnet: DevnetState, redis_client: Redis) -> Iterator[tuple[str, str]]:
    """A discovery and an orchestrator of pool 0 on uvicorn, with short loops; (discovery URL, orchestrator URL)."""
    prefix = "t" + secrets.token_hex(4)
    discovery = DiscoverySettings(
        redis_url=devnet.redis_url,
        rpc_url=devnet.rpc_url,
        deployment_file=Path(devnet.deployment_file),
        admin_token=TOKEN,
        sync_interval_s=0.2,
        role_cache_s=0.5,
        key_prefix="d" + prefix,
    )
    port = free_port()
    with ExitStack() as stack:
        discovery_url = stack.enter_context(serve_in_thread(create_discovery(discovery), port=free_port()))
        orchestrator = OrchestratorSettings(
            redis_url=devnet.redis_url,
            rpc_url=devnet.rpc_url,
            deployment_file=Path(devnet.deployment_file),
            discovery_url=discovery_url,
            admin_token=TOKEN,
            public_url=f"http://127.0.0.1:{port}",
            heartbeat_interval_s=0.5,
            waiting_timeout_s=120.0,  # the invited node must stay Waiting for the whole test
            invite_interval_s=0.2,
            feed_timeout_s=1.0,
            chain_check_interval_s=0.2,
            key_prefix=prefix,
        )
        url = stack.enter_context(serve_in_thread(create_orchestrator(orchestrator, manager), port=port))
        yield discovery_url, url


async def upload(discovery_url: str, node: LocalAccount, port: int) -> None:
    record = NodeRecord(node=node.address, provider=provider.address, ip="127.0.0.1", port=port, pool_id=0, specs=SPECS)
    async with httpx.AsyncClient(
        base_url=discovery_url, auth=RequestSigner(node, audience="discovery", chain_id=31337), timeout=30
    ) as http:
        response = await http.put("/api/nodes", json=record.model_dump(mode="json"))
    assert response.status_code == 200, response.text
    await bind_listed_specs(discovery_url, node.address)  # as the validator does once the node passed


async def beat(devnet: DevnetState, url: str, node: LocalAccount) -> httpx.Response:
    """One heartbeat, signed by the node key for pool 0's orchestrator, as the miner sends it."""
    audience = orchestrator_audience(Deployment.load(Path(devnet.deployment_file)).address("ComputePool"), 0)
    body = Heartbeat(address=node.address, version="test", timestamp=time.time())
    async with httpx.AsyncClient(
        base_url=url, auth=RequestSigner(node, audience=audience, chain_id=31337), timeout=30
    ) as http:
        return await http.post("/heartbeat", json=body.model_dump(mode="json"))


async def admin(url: str, method: str, path: str, body: Any = None) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url, headers=ADMIN, timeout=30) as http:
        return await http.request(method, path, json=body)


async def status(url: str, node: LocalAccount) -> str | None:
    response = await admin(url, "GET", f"/nodes/{node.address.lower()}")
    return str(response.json()["status"]) if response.status_code == 200 else None


async def test_a_node_that_answers_the_invite_but_never_joins_stays_out_of_work(
    devnet: DevnetState, network: Network, new_node: NewNode, services: tuple[str, str]
) -> None:
    discovery_url, url = services
    node = await new_node(validated=True)
    async with serving(answer({"result": "joined"})) as liar:  # says it joined; sends no transaction
        await upload(discovery_url, node, liar.port)
        await wait_for(lambda: _is(url, node, "waiting_for_heartbeat"), "the node to be invited")
        assert liar.connections >= 1
    assert (await admin(url, "POST", "/tasks", TASK)).status_code == 201

    replies = [await beat(devnet, url, node) for _ in range(3)]
    assert [reply.status_code for reply in replies] == [200, 200, 200], replies[-1].text
    assert all(reply.json()["assignment"] is None for reply in replies), "a node not in the pool got work"
    assert await status(url, node) == "waiting_for_heartbeat", "Healthy without being in the pool on chain"
    assert not await network.is_node_in_pool(0, node.address)
    tasks = (await admin(url, "GET", "/tasks")).json()["tasks"]
    assert node.address.lower() not in tasks[0]["assignments"]


async def test_a_node_blacklisted_on_chain_directly_loses_its_task_and_gets_none(
    devnet: DevnetState, network: Network, new_node: NewNode, services: tuple[str, str]
) -> None:
    discovery_url, url = services
    node = await new_node(join_pool=0)
    await upload(discovery_url, node, 9)  # never called: the node beats on its own and the chain shows it joined
    await wait_for(lambda: _is(url, node, None, negate=True), "the orchestrator to list the node")
    created = await admin(url, "POST", "/tasks", TASK)
    assert created.status_code == 201, created.text
    task_id = created.json()["id"]

    async def assigned() -> bool:
        reply = await beat(devnet, url, node)
        return reply.status_code == 200 and (reply.json()["assignment"] or {}).get("task_id") == task_id

    await wait_for(assigned, "the node to be Healthy with the task", timeout_s=30)

    # The pool's creator blacklists it on chain itself: no call to the orchestrator's ban route.
    await network.blacklist_node(network.transactor(role_account("federator")), 0, node.address)
    assert not await network.is_node_in_pool(0, node.address)

    async def refused() -> httpx.Response | None:
        reply = await beat(devnet, url, node)
        return reply if reply.status_code != 200 or reply.json()["assignment"] is None else None

    reply = await until(refused, "the blacklisted node to lose its task", timeout_s=20)
    assert reply.status_code == 403, reply.text
    assert reply.json()["error"]["code"] == "node_banned"
    assert await status(url, node) == "banned"
    task = (await admin(url, "GET", f"/tasks/{task_id}")).json()
    assert node.address.lower() not in task["assignments"]


async def test_a_node_removed_on_chain_disappears_from_discovery(
    network: Network, new_node: NewNode, services: tuple[str, str]
) -> None:
    discovery_url, _ = services
    node = await new_node()
    await upload(discovery_url, node, 9)
    async with httpx.AsyncClient(base_url=discovery_url, headers=ADMIN, timeout=30) as http:
        assert (await http.get(f"/api/nodes/{node.address}")).status_code == 200
        cursor = (await http.get("/api/events", params={"since": "now"})).json()["cursor"]

        await network.remove_node(network.transactor(provider), provider.address, node.address)

        async def gone() -> bool:
            return (await http.get(f"/api/nodes/{node.address}")).status_code == 404

        await wait_for(gone, "discovery to drop the removed node's record", timeout_s=20)
        page = (await http.get("/api/events", params={"since": cursor, "timeout": 0})).json()
        metrics = (await http.get("/metrics/")).text
    removed = [event for event in page["events"] if event["type"] == "removed"]
    assert [(event["node"], event["data"]) for event in removed] == [(node.address.lower(), {"reason": "node_removed"})]
    assert 'primenet_discovery_removed_total{reason="node_removed"}' in metrics
    # Its miner cannot put it back: the chain does not back it.
    record = NodeRecord(node=node.address, provider=provider.address, ip="127.0.0.1", port=9, pool_id=0, specs=SPECS)
    async with httpx.AsyncClient(
        base_url=discovery_url, auth=RequestSigner(node, audience="discovery", chain_id=31337), timeout=30
    ) as http:
        again = await http.put("/api/nodes", json=record.model_dump(mode="json"))
    assert 400 <= again.status_code < 500, again.text


async def _is(url: str, node: LocalAccount, wanted: str | None, *, negate: bool = False) -> bool:
    return (await status(url, node) == wanted) != negate


async def test_a_waiting_node_beating_while_the_chain_is_down_gets_a_503_and_no_promotion(
    devnet: DevnetState, redis_client: Redis
) -> None:
    """The chain cannot be read: the beat that needs it is refused as retryable, and the node is not guessed in."""
    prefix = "tc" + secrets.token_hex(4)
    node = Account.create()
    store = OrchestratorStore(redis_client, prefix=prefix)
    record = NodeRecord(node=node.address, provider=provider.address, ip="127.0.0.1", port=9, pool_id=0, specs=SPECS)
    now = time.time()
    await store.upsert_listed(record, listed_at=now, now=now)
    await store.transition(node.address.lower(), NodeStatus.WAITING, now=now)
    port = free_port()
    settings = OrchestratorSettings(
        redis_url=devnet.redis_url,
        rpc_url="http://127.0.0.1:9",  # nothing listens: every chain call fails at once
        deployment_file=Path(devnet.deployment_file),
        discovery_url="http://127.0.0.1:9",
        admin_token=TOKEN,
        public_url=f"http://127.0.0.1:{port}",
        key_prefix=prefix,
    )
    with serve_in_thread(create_orchestrator(settings, manager), port=port) as url:
        reply = await beat(devnet, url, node)
        assert reply.status_code == 503, reply.text
        assert reply.json()["error"]["code"] == "chain_unavailable"
        assert reply.headers["retry-after"]
        assert await status(url, node) == "waiting_for_heartbeat"
