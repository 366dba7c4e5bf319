"""The orchestrator's HTTP contract on a real server, Redis and chain: admin auth, task validation and the
name index, heartbeats from strangers, node routes and the ban. (The node lifecycle is in test_orchestrator.py.)"""

import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from primenet.chain.contracts import Network
from primenet.core.auth import RequestSigner
from primenet.core.models import Heartbeat, NodeRecord
from primenet.core.redisdb import connect
from primenet.devnet.accounts import role_account
from primenet.devnet.local import DevnetState
from primenet.devnet.processes import free_port
from primenet.devnet.serve import serve_in_thread
from primenet.orchestrator.app import create_app
from primenet.orchestrator.models import NodeStatus
from primenet.orchestrator.settings import OrchestratorSettings
from primenet.orchestrator.store import OrchestratorStore
from service_apps import pool_audience

NewNode = Callable[..., Awaitable[LocalAccount]]
TOKEN = "orchestrator-admin-token-0123456789"
ADMIN = {"authorization": f"Bearer {TOKEN}"}
JSON = {"content-type": "application/json"}
TASK = {"name": "t1", "image": "busybox:1", "command": ["true"], "entrypoint": None, "env": {"A": "1"}, "gpus": 0,
        "nodes": 1, "requirements": ""}  # fmt: skip


@pytest.fixture
def prefix() -> str:
    return "oa" + secrets.token_hex(4)


@pytest.fixture
def orchestrator(devnet: DevnetState, prefix: str) -> Iterator[str]:
    port = free_port()
    settings = OrchestratorSettings(
        redis_url=devnet.redis_url,
        rpc_url=devnet.rpc_url,
        deployment_file=Path(devnet.deployment_file),
        discovery_url="http://127.0.0.1:9",  # no discovery: the monitor's failures must not disturb the API
        admin_token=TOKEN,
        public_url=f"http://127.0.0.1:{port}",
        key_prefix=prefix,
    )
    with serve_in_thread(create_app(settings, role_account("orchestrator")), port=port) as url:
        yield url


@pytest.fixture
async def admin(orchestrator: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=orchestrator, headers=ADMIN, timeout=30) as http:
        yield http


async def test_admin_routes_need_the_token(orchestrator: str) -> None:
    async with httpx.AsyncClient(base_url=orchestrator) as http:
        assert (await http.get("/tasks")).json()["error"]["code"] == "admin_token_missing"
        wrong = await http.get("/nodes", headers={"authorization": "Bearer " + "x" * 32})
        assert wrong.status_code == 401
        assert wrong.json()["error"]["code"] == "admin_token_invalid"
        assert (await http.get("/health")).status_code == 200


async def test_tasks_are_validated_named_once_and_deleted(admin: httpx.AsyncClient) -> None:
    created = await admin.post("/tasks", json=TASK)
    assert created.status_code == 201, created.text
    task = created.json()
    assert task["name"] == "t1"
    assert task["assignments"] == {}
    assert task["nodes"] == 1
    assert task["created_at"] > 0
    taken = await admin.post("/tasks", json=TASK)
    assert taken.status_code == 409
    assert taken.json()["error"]["code"] == "task_name_taken"
    bad = await admin.post("/tasks", json={**TASK, "name": "t2", "requirements": "gpu:count=many"})
    assert bad.status_code == 422
    assert bad.json()["error"]["code"] == "requirements_invalid"
    for wrong in ({"name": "no spaces"}, {"nodes": 0}, {"nodes": "some"}, {"gpus": -1}, {"name": "x" * 65}):
        response = await admin.post("/tasks", json={**TASK, **wrong})
        assert response.status_code == 422, wrong
    every = await admin.post("/tasks", json={**TASK, "name": "t-all", "nodes": "all"})
    assert every.json()["nodes"] == "all"
    listed = (await admin.get("/tasks")).json()["tasks"]
    assert [t["name"] for t in listed] == ["t1", "t-all"]
    assert (await admin.get(f"/tasks/{task['id']}")).json()["env"] == {"A": "1"}
    assert (await admin.delete(f"/tasks/{task['id']}")).json() == {"deleted": task["id"]}
    gone = await admin.get(f"/tasks/{task['id']}")
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "task_not_found"
    assert (await admin.post("/tasks", json=TASK)).status_code == 201  # the name is free again


async def test_heartbeats_from_unknown_nodes_are_refused(orchestrator: str, devnet: DevnetState) -> None:
    stranger = Account.create()
    beat = Heartbeat(address=stranger.address, version="0", timestamp=time.time())
    signer = RequestSigner(stranger, audience=pool_audience(devnet), chain_id=31337)
    async with httpx.AsyncClient(base_url=orchestrator, auth=signer) as http:
        response = await http.post("/heartbeat", content=beat.model_dump_json(), headers=JSON)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "unknown_node"
    async with httpx.AsyncClient(base_url=orchestrator) as http:
        assert (await http.post("/heartbeat", content=beat.model_dump_json(), headers=JSON)).status_code == 401


async def test_node_routes_and_the_ban(
    admin: httpx.AsyncClient, devnet: DevnetState, network: Network, new_node: NewNode, prefix: str
) -> None:
    missing = await admin.get(f"/nodes/{Account.create().address}")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "node_not_found"
    node = await new_node(join_pool=0)
    address = node.address.lower()
    record = NodeRecord(
        node=address, provider=role_account("provider").address, ip="127.0.0.1", port=9, pool_id=0,
        specs={"cpu_cores": 2},
    )  # fmt: skip
    redis = connect(devnet.redis_url)
    try:
        # Stored as the monitor would have it (a node of our pool), without running discovery for this test.
        await OrchestratorStore(redis, prefix=prefix).upsert_listed(record, listed_at=time.time(), now=time.time())
    finally:
        await redis.aclose()
    view = (await admin.get(f"/nodes/{address}")).json()
    assert view["status"] in ("discovered", "waiting_for_heartbeat")
    assert view["port"] == 9
    logs = await admin.get(f"/nodes/{address}/logs")
    assert logs.status_code == 502
    assert logs.json()["error"]["code"] == "miner_unreachable"

    banned = await admin.post(f"/nodes/{address}/ban")
    assert banned.status_code == 200, banned.text
    assert banned.json()["status"] == "banned"
    assert banned.json()["tx"].startswith("0x")
    assert not await network.is_node_in_pool(0, address)
    nodes = (await admin.get("/nodes")).json()
    assert nodes["counts"][NodeStatus.BANNED.value] == 1
    assert [n["status"] for n in nodes["nodes"]] == ["banned"]
    beat = Heartbeat(address=address, version="0", timestamp=time.time())
    signer = RequestSigner(node, audience=pool_audience(devnet), chain_id=31337)
    async with httpx.AsyncClient(base_url=str(admin.base_url), auth=signer) as http:
        refused = await http.post("/heartbeat", content=beat.model_dump_json(), headers=JSON)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "node_banned"


async def test_a_tasks_limits_reach_the_spec_the_miner_runs(
    admin: httpx.AsyncClient, redis_url: str, prefix: str
) -> None:
    limits = {"shm_size_mib": 512, "cpu_limit": 2.5, "memory_limit_mib": 4096, "max_restarts": 0, "run_as_root": True}
    created = await admin.post("/tasks", json={**TASK, "name": "limited", **limits})
    assert created.status_code == 201, created.text
    task = created.json()
    assert {key: task[key] for key in limits} == limits
    redis = connect(redis_url)
    try:
        stored = await OrchestratorStore(redis, prefix=prefix).task(task["id"])
    finally:
        await redis.aclose()
    assert stored is not None
    spec = stored.spec()  # what a heartbeat reply carries: nothing dropped
    assert (spec.shm_size_mib, spec.cpu_limit, spec.memory_limit_mib) == (512, 2.5, 4096)
    assert (spec.max_restarts, spec.run_as_root) == (0, True)
    for wrong in ({"cpu_limit": 0}, {"cpu_limit": 5000}, {"memory_limit_mib": 1}, {"shm_size_mib": 0},
                  {"max_restarts": -1}, {"run_as_root": "maybe"}):  # fmt: skip
        response = await admin.post("/tasks", json={**TASK, "name": "bad", **wrong})
        assert response.status_code == 422, wrong
    # Non-finite numbers, which JSON itself cannot carry but Python's encoder writes: a 4xx, never a 5xx.
    for number in ("Infinity", "NaN", "1e999"):
        raw = json.dumps({**TASK, "name": "bad"}).replace('"gpus": 0', f'"gpus": 0, "cpu_limit": {number}')
        response = await admin.post("/tasks", content=raw, headers=JSON)
        assert 400 <= response.status_code < 500, (number, response.text)
