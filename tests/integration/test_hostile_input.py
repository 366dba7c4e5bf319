"""Input that would break a service for everyone, sent from outside to the real services (uvicorn, Redis, Anvil).

Each attack is one request (or one record an older version left in Redis) and each must end as a 4xx for its
sender, or be passed over, while every other client is served as before.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account

from primenet.core.auth import AUTH_HEADER, RequestSigner, sign_request
from primenet.core.models import ComputeSpecs, Heartbeat, NodeRecord
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
from primenet.validator.app import create_app as create_validator
from primenet.validator.settings import ValidatorSettings
from service_apps import miner_app, pool_audience
from waiting import until

pytestmark = pytest.mark.integration

CHAIN_ID = 31337
TOKEN = "hostile-input-admin-token-0123"
ADMIN = {"authorization": f"Bearer {TOKEN}"}
JSON = {"content-type": "application/json"}
SPECS = ComputeSpecs(cpu_cores=4, ram_mib=8192, storage_free_gb=100.0)


def error(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert set(body) == {"error"}, body
    return response.status_code, str(body["error"]["code"])


@pytest.fixture
def prefix() -> str:
    return "hi" + secrets.token_hex(4)


@pytest.fixture
def discovery(devnet: DevnetState, prefix: str) -> Iterator[str]:
    settings = DiscoverySettings(
        redis_url=devnet.redis_url,
        rpc_url=devnet.rpc_url,
        deployment_file=Path(devnet.deployment_file),
        admin_token=TOKEN,
        sync_interval_s=0.2,
        full_resync_interval_s=0.2,
        key_prefix=prefix,
    )
    with serve_in_thread(create_discovery(settings), port=free_port()) as url:
        yield url


@pytest.fixture
def orchestrator(devnet: DevnetState, prefix: str) -> Iterator[str]:
    port = free_port()
    settings = OrchestratorSettings(
        redis_url=devnet.redis_url,
        rpc_url=devnet.rpc_url,
        deployment_file=Path(devnet.deployment_file),
        discovery_url="http://127.0.0.1:9",  # no discovery: only the API is under test
        admin_token=TOKEN,
        public_url=f"http://127.0.0.1:{port}",
        key_prefix=prefix,
    )
    with serve_in_thread(create_orchestrator(settings, role_account("orchestrator")), port=port) as url:
        yield url


@pytest.fixture
async def redis(devnet: DevnetState) -> AsyncIterator[Any]:
    client = connect(devnet.redis_url)
    yield client
    await client.aclose()


# --- a signed header whose numbers are extreme, sent without any key ------------------------------------


def extreme_header(audience: str, path: str, **numbers: str) -> str:
    """An auth header as an attacker writes it: well formed but for the numbers (written as raw JSON literals,
    since some have more digits than Python will turn into text)."""
    fields = {
        "address": Account.create().address,
        "method": "POST",
        "path": path,
        "body_sha256": hashlib.sha256(b"{}").hexdigest(),
        "audience": audience,
        "chain_id": "@chain_id@",
        "timestamp": "@timestamp@",
        "nonce": secrets.token_urlsafe(18),
        "signature": "0x" + "11" * 65,
    }
    text = json.dumps(fields)
    for name, default in (("chain_id", str(CHAIN_ID)), ("timestamp", str(int(time.time())))):
        text = text.replace(f'"@{name}@"', numbers.get(name, default))
    return text


EXTREME_NUMBERS = {
    "timestamp past every clock": {"timestamp": "1" + "0" * 400},
    "timestamp of 5000 digits": {"timestamp": "9" * 5000},
    "timestamp as a huge float": {"timestamp": "1e400"},
    "chain id past int64": {"chain_id": str(2**64)},
}


@pytest.mark.parametrize("case", EXTREME_NUMBERS)
async def test_extreme_numbers_in_the_auth_header_get_400_on_every_signed_route(
    case: str, devnet: DevnetState, discovery: str, orchestrator: str, tmp_path: Path
) -> None:
    app, settings, node = miner_app(devnet, devnet.rpc_url, tmp_path)
    targets = [
        (discovery, "PUT", "/api/nodes", "discovery"),
        (orchestrator, "POST", "/heartbeat", pool_audience(devnet, 0)),
    ]
    with serve_in_thread(app, port=settings.port) as miner:
        targets.append((miner, "POST", "/invite", node.address.lower()))
        for url, method, path, audience in targets:
            header = extreme_header(audience, path, **EXTREME_NUMBERS[case]).replace('"POST"', f'"{method}"')
            async with httpx.AsyncClient(base_url=url, timeout=30) as http:
                response = await http.request(method, path, content=b"{}", headers={AUTH_HEADER: header, **JSON})
            assert error(response) == (400, "auth_malformed"), (url, path, response.text)


async def test_an_overlong_auth_header_is_refused_before_parsing(discovery: str) -> None:
    header = extreme_header("discovery", "/api/nodes").replace('"POST"', '"PUT"')
    padded = header[:-1] + ', "padding": "' + "x" * 7000 + '"}'
    async with httpx.AsyncClient(base_url=discovery, timeout=30) as http:
        response = await http.put("/api/nodes", content=b"{}", headers={AUTH_HEADER: padded, **JSON})
    status, code = error(response)
    assert (status, code) == (400, "auth_malformed")
    assert "longer than" in response.json()["error"]["message"]


# --- a node record with a number JSON cannot carry back -------------------------------------------------


def node_body(node: Any, storage: str) -> bytes:
    record = NodeRecord(
        node=node.address, provider=role_account("provider").address, ip="127.0.0.1", port=8091, pool_id=0,
        specs=SPECS,
    )  # fmt: skip
    return record.model_dump_json().replace('"storage_free_gb":100.0', f'"storage_free_gb":{storage}').encode()


async def signed_put(url: str, node: Any, body: bytes) -> httpx.Response:
    header = sign_request(node, method="PUT", path="/api/nodes", body=body, audience="discovery", chain_id=CHAIN_ID)
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        return await http.put("/api/nodes", content=body, headers={AUTH_HEADER: header, **JSON})


@pytest.mark.parametrize("storage", ["Infinity", "NaN", "-Infinity", "1e400", "1e300"])
async def test_a_non_finite_or_absurd_number_in_the_specs_is_refused_and_nothing_is_stored(
    storage: str, discovery: str, new_node: Any
) -> None:
    node = await new_node()
    refused = await signed_put(discovery, node, node_body(node, storage))
    assert error(refused) == (422, "invalid_request"), refused.text
    # Nothing was written: the node reads as absent, and its valid upload registers it as if nothing happened.
    async with httpx.AsyncClient(base_url=discovery, headers=ADMIN, timeout=30) as http:
        assert (await http.get(f"/api/nodes/{node.address}")).status_code == 404
    accepted = await signed_put(discovery, node, node_body(node, "250.0"))
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["result"] == "registered"


# --- records an older version (or a person) left in Redis: passed over, never a 5xx for everyone ----------


async def test_discovery_passes_over_an_unreadable_record(
    discovery: str, new_node: Any, redis: Any, prefix: str
) -> None:
    good = await new_node()
    assert (await signed_put(discovery, good, node_body(good, "250.0"))).status_code == 200
    # What an older discovery stored for `Infinity` (null), and a hash left half written.
    bad, torn = await new_node(), Account.create()
    assert (await signed_put(discovery, bad, node_body(bad, "250.0"))).status_code == 200
    raw = await redis.hget(f"{prefix}:node:{bad.address.lower()}", "record")
    await redis.hset(f"{prefix}:node:{bad.address.lower()}", "record", raw.replace("250.0", "null"))
    await redis.hset(f"{prefix}:node:{torn.address.lower()}", mapping={"validated": "1"})
    await redis.zadd(f"{prefix}:nodes", {torn.address.lower(): time.time()})
    await redis.sadd(f"{prefix}:pool:0", torn.address.lower())
    synced_before = time.time()

    signer = RequestSigner(role_account("validator"), audience="discovery", chain_id=CHAIN_ID)
    async with httpx.AsyncClient(base_url=discovery, auth=signer, timeout=30) as http:
        listing = await http.get("/api/validator")
    assert listing.status_code == 200, listing.text
    listed = {item["node"] for item in listing.json()["nodes"]}
    assert good.address.lower() in listed
    assert torn.address.lower() not in listed

    # The chain sync (a full re-read every 0.2 s here) keeps passing over every node.
    async with httpx.AsyncClient(base_url=discovery, headers=ADMIN, timeout=30) as http:

        async def later_pass() -> dict[str, Any] | None:
            sync: dict[str, Any] = (await http.get("/health")).json()["chain_sync"]
            return sync if (sync["last_success"] or 0) > synced_before + 0.5 else None

        sync = await until(later_pass, "a chain sync pass after the bad records were written", every_s=0.1)
    assert sync["last_error"] is None, sync
    # And the node whose record was unreadable repairs it with a valid upload.
    assert (await signed_put(discovery, bad, node_body(bad, "300.0"))).status_code == 200


async def test_orchestrator_lists_around_an_unreadable_node_or_task(orchestrator: str, redis: Any, prefix: str) -> None:
    store = OrchestratorStore(redis, prefix=prefix)
    now = time.time()
    nodes = [Account.create() for _ in range(2)]
    for node in nodes:
        record = NodeRecord(
            node=node.address, provider=role_account("provider").address, ip="127.0.0.1", port=9, pool_id=0,
            specs=SPECS,
        )  # fmt: skip
        await store.upsert_listed(record, listed_at=now, now=now)
    # What an older orchestrator stored for specs with `Infinity` in them.
    await redis.hset(store.node_key(nodes[1].address), "specs", SPECS.model_dump_json().replace("100.0", "null"))
    async with httpx.AsyncClient(base_url=orchestrator, headers=ADMIN, timeout=30) as http:
        created = await http.post("/tasks", json={"name": "fine", "image": "busybox:1"})
        assert created.status_code == 201, created.text
        await redis.set(f"{prefix}:task:{'f' * 32}", '{"name": "torn"}')
        await redis.sadd(f"{prefix}:tasks", "f" * 32)

        listing = await http.get("/nodes")
        tasks = await http.get("/tasks")
    assert listing.status_code == 200, listing.text
    assert [n["address"] for n in listing.json()["nodes"]] == [nodes[0].address.lower()]
    assert tasks.status_code == 200, tasks.text
    assert [t["name"] for t in tasks.json()["tasks"]] == ["fine"]
    assert (await store.counts())[NodeStatus.DISCOVERED.value] == 2  # skipped, not deleted


async def test_validator_lists_rejections_around_an_unreadable_one(
    devnet: DevnetState, redis: Any, prefix: str
) -> None:
    settings = ValidatorSettings(
        redis_url=devnet.redis_url,
        rpc_url=devnet.rpc_url,
        deployment_file=Path(devnet.deployment_file),
        discovery_url="http://127.0.0.1:9",
        admin_token=TOKEN,
        key_prefix=prefix,
    )
    readable = {
        "node": Account.create().address.lower(), "url": "http://127.0.0.1:9", "claimed_gpu": "cpu",
        "outcome": "rejected", "reason": "wrong_product", "detail": "d", "figures": {"worst": "Infinity"},
        "backend": None, "at": time.time(),
    }  # fmt: skip
    # What an older validator stored for an infinite figure (null), which no reader could parse.
    unreadable = {**readable, "figures": {"worst": None}}
    await redis.lpush(f"{prefix}:rejections", json.dumps(readable), json.dumps(unreadable))
    with serve_in_thread(create_validator(settings, role_account("validator")), port=free_port()) as url:
        async with httpx.AsyncClient(base_url=url, headers=ADMIN, timeout=30) as http:
            response = await http.get("/rejections")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == 1
    assert body["rejections"][0]["node"] == readable["node"]


# --- a chunked body past the limit ----------------------------------------------------------------------


async def test_a_chunked_heartbeat_past_the_body_limit_gets_413(orchestrator: str, devnet: DevnetState) -> None:
    node = Account.create()
    beat = Heartbeat(address=node.address, version="test", timestamp=time.time()).model_dump_json().encode()
    padding = b" " * (3 * 1024 * 1024)  # JSON allows trailing whitespace; the default limit is 2 MiB
    body = beat + padding
    header = sign_request(
        node, method="POST", path="/heartbeat", body=body, audience=pool_audience(devnet, 0),
        chain_id=CHAIN_ID,
    )  # fmt: skip

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 256 * 1024):
            yield body[start : start + 256 * 1024]  # no Content-Length: the limit must hold while it streams

    async with httpx.AsyncClient(base_url=orchestrator, timeout=30) as http:
        response = await http.post("/heartbeat", content=chunks(), headers={AUTH_HEADER: header, **JSON})
    assert error(response) == (413, "body_too_large"), response.text
