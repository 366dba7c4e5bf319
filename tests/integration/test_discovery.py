"""Discovery against a real Anvil (the devnet's contracts), a real Redis and a real uvicorn server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from binding import bind_listed_specs
from primenet.chain.contracts import Network
from primenet.core.auth import RequestSigner
from primenet.core.models import ComputeSpecs, GpuDevice, NodeRecord
from primenet.devnet.accounts import role_account
from primenet.devnet.local import DevnetState
from primenet.devnet.processes import free_port
from primenet.devnet.serve import serve_in_thread
from primenet.discovery.app import create_app
from primenet.discovery.settings import DiscoverySettings

NewNode = Callable[..., Awaitable[LocalAccount]]  # the `new_node` fixture (tests/integration/conftest.py)

ADMIN_TOKEN = "test-admin-token-0123456789"
validator = role_account("validator")
orchestrator = role_account("orchestrator")  # compute manager of pool 0
federator = role_account("federator")  # creator of pool 0
SPECS = ComputeSpecs(
    gpus=[GpuDevice(index=0, model="NVIDIA H100 80GB HBM3", memory_mib=81559)],
    cpu_model="test cpu",
    cpu_cores=8,
    ram_mib=64_000,
    storage_path="/var/lib/primenet",
    storage_free_gb=500.0,
)


def settings_for(devnet: DevnetState, prefix: str, **overrides: Any) -> DiscoverySettings:
    fields: dict[str, Any] = {"sync_interval_s": 0.2, "role_cache_s": 0.5, **overrides}
    return DiscoverySettings(
        redis_url=devnet.redis_url,
        rpc_url=devnet.rpc_url,
        chain_id=devnet.chain_id,
        deployment_file=Path(devnet.deployment_file),
        admin_token=ADMIN_TOKEN,
        key_prefix=prefix,
        **fields,
    )


@pytest.fixture
def discovery_url(devnet: DevnetState, request: pytest.FixtureRequest) -> Iterator[str]:
    """A discovery with its own Redis key prefix, so tests do not see each other's nodes."""
    prefix = "d" + str(abs(hash(request.node.name)) % 10**9)
    with serve_in_thread(create_app(settings_for(devnet, prefix)), port=free_port()) as url:
        yield url


def client(url: str, account: LocalAccount) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=url, auth=RequestSigner(account, audience="discovery", chain_id=31337), timeout=30
    )


def record(node: LocalAccount, **changes: Any) -> dict[str, Any]:
    base = NodeRecord(
        node=node.address,
        provider=role_account("provider").address,
        ip="127.0.0.1",
        port=8091,
        pool_id=0,
        specs=SPECS,
    )
    return {**base.model_dump(mode="json"), **changes}


async def put(url: str, node: LocalAccount, body: dict[str, Any]) -> httpx.Response:
    async with client(url, node) as http:
        return await http.put("/api/nodes", json=body)


def code(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])


@pytest.fixture
async def registered(discovery_url: str, new_node: NewNode) -> LocalAccount:
    node = await new_node()
    response = await put(discovery_url, node, record(node))
    assert response.status_code == 200, response.text
    assert response.json()["result"] == "registered"
    return node


async def test_registered_node_is_listed_for_validator_and_pool_owners(
    discovery_url: str, registered: LocalAccount
) -> None:
    for reader, path in ((validator, "/api/validator"), (orchestrator, "/api/pool/0"), (federator, "/api/pool/0")):
        async with client(discovery_url, reader) as http:
            response = await http.get(path)
        assert response.status_code == 200, response.text
        nodes = {n["node"]: n for n in response.json()["nodes"]}
        assert registered.address.lower() in nodes
        listed = nodes[registered.address.lower()]
        assert listed["specs"]["gpus"][0]["memory_mib"] == 81559
        assert (listed["is_validated"], listed["is_active"], listed["is_whitelisted"]) == (False, False, True)


async def test_outsiders_get_403_on_both_listings(discovery_url: str, registered: LocalAccount) -> None:
    outsider = Account.create()
    async with client(discovery_url, outsider) as http:
        as_validator = await http.get("/api/validator")
        as_owner = await http.get("/api/pool/0")
    assert (as_validator.status_code, code(as_validator)) == (403, "signer_unauthorized")
    assert (as_owner.status_code, code(as_owner)) == (403, "not_pool_owner")


async def test_every_refusal_has_its_own_code(
    discovery_url: str, new_node: NewNode, network: Network, devnet: DevnetState
) -> None:
    node = await new_node()
    stranger = Account.create()
    fed = network.transactor(federator)
    manager = orchestrator.address
    gpu_pool = await network.create_pool(fed, domain_id=0, manager=manager, name="gpus", data_uri="gpu:count=2")
    broken_pool = await network.create_pool(fed, domain_id=0, manager=manager, name="x", data_uri="bogus=1")

    cases = {
        "signer_not_node": (await put(discovery_url, stranger, record(node)), 403),
        "pool_not_found": (await put(discovery_url, node, record(node, pool_id=999)), 422),
        "node_not_on_chain": (await put(discovery_url, stranger, record(stranger)), 422),
        "provider_mismatch": (await put(discovery_url, node, record(node, provider=stranger.address)), 422),
        "requirements_not_met": (await put(discovery_url, node, record(node, pool_id=gpu_pool)), 422),
        "pool_requirements_invalid": (await put(discovery_url, node, record(node, pool_id=broken_pool)), 422),
        "invalid_request": (await put(discovery_url, node, record(node, port=0)), 422),
    }
    for expected, (response, status) in cases.items():
        assert (response.status_code, code(response)) == (status, expected), response.text
    unmet = cases["requirements_not_met"][0].json()["error"]["details"]
    assert unmet == ["needs exactly 2 matching GPU(s), has 1"]


async def test_active_nodes_cannot_move_and_the_ip_limit_holds(discovery_url: str, new_node: NewNode) -> None:
    first = await new_node(join_pool=0)
    second = await new_node(join_pool=0)
    accepted = await put(discovery_url, first, record(first, ip="127.0.0.5"))
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["node"]["is_active"] is True

    moved = await put(discovery_url, first, record(first, ip="127.0.0.5", port=9999))
    assert (moved.status_code, code(moved)) == (409, "node_active_in_pool")
    same = await put(discovery_url, first, record(first, ip="127.0.0.5"))
    assert same.json()["result"] == "unchanged"

    crowded = await put(discovery_url, second, record(second, ip="127.0.0.5"))
    assert (crowded.status_code, code(crowded)) == (409, "ip_limit_reached")
    elsewhere = await put(discovery_url, second, record(second, ip="127.0.0.6"))
    assert elsewhere.status_code == 200, elsewhere.text


async def test_change_feed_delivers_a_registration_within_a_second(discovery_url: str, new_node: NewNode) -> None:
    node = await new_node()
    async with client(discovery_url, validator) as http:
        cursor = (await http.get("/api/events", params={"since": "now"})).json()["cursor"]
        waiting = asyncio.create_task(http.get("/api/events", params={"since": cursor, "timeout": 10}))
        await asyncio.sleep(0.3)  # the long-poll is now blocked in the server
        assert not waiting.done()
        response = await put(discovery_url, node, record(node))
        put_done = time.monotonic()
        delivered = await waiting
        latency = time.monotonic() - put_done
    assert response.status_code == 200, response.text
    events = delivered.json()["events"]
    assert [(e["type"], e["node"]) for e in events] == [("registered", node.address.lower())]
    assert latency < 1.0, f"the feed took {latency:.3f} s"


async def test_chain_sync_updates_flags_and_emits_events(
    discovery_url: str, registered: LocalAccount, network: Network
) -> None:
    provider = role_account("provider").address
    async with client(discovery_url, validator) as http:
        cursor = (await http.get("/api/events", params={"since": "now"})).json()["cursor"]
        await network.validate_node(network.transactor(validator), provider, registered.address)
        deadline = time.monotonic() + 10
        seen: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not any(e["type"] == "flags_changed" for e in seen):
            page = (await http.get("/api/events", params={"since": cursor, "timeout": 2})).json()
            seen += page["events"]
            cursor = page["cursor"]
        unbound = (await http.get("/api/validator", params={"validated": "true"})).json()
        await bind_listed_specs(discovery_url, registered.address)  # as the validator does after its challenge
        listing = (await http.get("/api/validator", params={"validated": "true"})).json()
    # Served validated only once bound to the challenged specs (issue 15, item 4); the chain's flag is in the event.
    assert {"type": "flags_changed", "data": {"validated": False, "chain_validated": True}} in [
        {"type": e["type"], "data": e["data"]} for e in seen
    ]
    assert registered.address.lower() not in [n["node"] for n in unbound["nodes"]]
    assert registered.address.lower() in [n["node"] for n in listing["nodes"]]


async def test_node_reads_itself_and_admin_reads_any(discovery_url: str, registered: LocalAccount) -> None:
    path = f"/api/nodes/{registered.address}"
    async with client(discovery_url, registered) as http:
        own = await http.get(path)
    async with client(discovery_url, Account.create()) as http:
        other = await http.get(path)
    async with httpx.AsyncClient(base_url=discovery_url) as http:
        admin = await http.get(path, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        wrong = await http.get(path, headers={"Authorization": "Bearer not-the-token-at-all"})
        as_admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        unknown = await http.get(f"/api/nodes/{Account.create().address}", headers=as_admin)
    async with client(discovery_url, validator) as http:
        listed = (await http.get("/api/validator")).json()["nodes"]
    assert own.status_code == 200
    assert own.json()["node"] == registered.address.lower()
    # Listings are joined from pre-serialized JSON; they must say exactly what the single-node route says.
    assert [n for n in listed if n["node"] == registered.address.lower()] == [own.json()]
    assert (other.status_code, code(other)) == (403, "not_this_node")
    assert admin.json() == own.json()
    assert (wrong.status_code, code(wrong)) == (401, "admin_token_invalid")
    assert (unknown.status_code, code(unknown)) == (404, "node_not_found")


async def test_restart_loses_no_node_and_no_event(devnet: DevnetState, new_node: NewNode) -> None:
    settings = settings_for(devnet, "restart")
    node, later = await new_node(), await new_node()
    with serve_in_thread(create_app(settings), port=free_port()) as url:
        assert (await put(url, node, record(node))).status_code == 200
        async with client(url, validator) as http:
            cursor = (await http.get("/api/events", params={"since": "now"})).json()["cursor"]
        assert (await put(url, later, record(later))).status_code == 200
    with serve_in_thread(create_app(settings), port=free_port()) as url:
        async with client(url, validator) as http:
            listed = (await http.get("/api/validator")).json()
            page = (await http.get("/api/events", params={"since": cursor, "timeout": 0})).json()
            health = (await http.get("/health")).json()
    assert {node.address.lower(), later.address.lower()} <= {n["node"] for n in listed["nodes"]}
    assert [e["node"] for e in page["events"] if e["type"] == "registered"] == [later.address.lower()]
    assert health["redis"] == "ok"
    assert health["nodes"] >= 2


async def test_health_reports_chain_sync(discovery_url: str) -> None:
    async with httpx.AsyncClient(base_url=discovery_url) as http:
        deadline = time.monotonic() + 5
        while True:
            body = (await http.get("/health")).json()
            if body["chain_sync"]["fresh"] or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        metrics = (await http.get("/metrics/")).text
    assert body["status"] == "ok", body
    assert body["chain_sync"]["block"] >= 1
    assert "primenet_discovery_nodes" in metrics


async def test_a_binding_reads_the_chain_flags_so_the_node_is_served_validated_at_once(
    devnet: DevnetState, new_node: NewNode, network: Network
) -> None:
    """Issue 16: a node validated on chain was served validated only at the sync's next tick, holding up its
    orchestrator's invite. The validator binds right after validateNode: the binding reads the flags there and
    then. The sync here ticks once at start and then hourly, so only the binding can have read them."""
    settings = settings_for(devnet, "dbindnow", sync_interval_s=3600.0)
    with serve_in_thread(create_app(settings), port=free_port()) as url:
        node = await new_node()
        assert (await put(url, node, record(node))).status_code == 200
        await network.validate_node(network.transactor(validator), role_account("provider").address, node.address)
        await bind_listed_specs(url, node.address)  # as the validator does once validateNode is mined
        async with client(url, validator) as http:
            listing = (await http.get("/api/validator", params={"validated": "true"})).json()
    assert node.address.lower() in [n["node"] for n in listing["nodes"]]
