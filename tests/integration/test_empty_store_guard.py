"""A lost orchestrator store withdraws nothing: real chain, Redis, discovery, orchestrator, miner and dockerd.

Each test has a pool of its own on the session devnet (a new pool, managed by the orchestrator key), so its count
of nodes on chain is known. (a) A new deployment (the pool empty on chain) marks its empty store and runs as usual.
(b) With a node in the pool running a task, the orchestrator's keys are deleted and it is restarted on the same
port: the node's beats are answered `hold` (signed), the miner keeps the very same container running, the
orchestrator says so (/health, GET /store, its metric) and accepts a new task without placing it; once the operator
confirms with `primenet orchestrator confirm-store`, the orchestrator behaves as usual: the node gets the new task,
and the old container (no longer assigned anywhere) is replaced.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
from asyncio.subprocess import PIPE
from collections.abc import AsyncIterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account.signers.local import LocalAccount

from binding import bind_listed_specs
from primenet.chain.contracts import Network
from primenet.core.auth import RequestSigner
from primenet.core.models import ComputeSpecs, NodeRecord
from primenet.core.redisdb import connect
from primenet.devnet.accounts import role_account
from primenet.devnet.local import DevnetState
from primenet.devnet.processes import free_port
from primenet.devnet.serve import serve_in_thread
from primenet.discovery.app import create_app as create_discovery
from primenet.discovery.settings import DiscoverySettings
from primenet.miner.app import create_app as create_miner
from primenet.miner.runner import LABEL_NODE, LABEL_TASK
from primenet.miner.settings import MinerKeys, MinerSettings
from primenet.orchestrator.app import create_app as create_orchestrator
from primenet.orchestrator.settings import OrchestratorSettings
from service_apps import orchestrator_settings as fast_settings
from waiting import until, wait_for

IMAGE = "local/primenet-busybox:1"
SPECS = ComputeSpecs(cpu_model="test cpu", cpu_cores=2, ram_mib=4096, storage_path="/tmp", storage_free_gb=10.0)
TOKEN = "empty-store-guard-admin-token-0123"
ADMIN = {"authorization": f"Bearer {TOKEN}"}
PRIMENET = Path(sys.executable).parent / "primenet"
manager = role_account("orchestrator")
provider = role_account("provider")


@pytest.fixture
async def own_pool(network: Network) -> int:
    """A new ACTIVE pool of domain 0, managed by the orchestrator key, with no node in it."""
    federator = network.transactor(role_account("federator"))
    pool_id = await network.create_pool(
        federator, domain_id=0, manager=manager.address, name=f"guard-{secrets.token_hex(3)}"
    )
    await network.start_pool(network.transactor(manager), pool_id)
    return pool_id


def orchestrator_settings(
    devnet: DevnetState, prefix: str, pool_id: int, discovery_url: str, port: int
) -> OrchestratorSettings:
    return fast_settings(
        devnet,
        discovery_url=discovery_url,
        prefix=prefix,
        port=port,
        admin_token=TOKEN,
        pool_id=pool_id,
        unhealthy_after_s=10.0,
        dead_after_s=20.0,
        waiting_timeout_s=120.0,
        reassign_grace_s=60.0,
        schedule_interval_s=30.0,
        store_guard=True,  # the session turns it off for the tests that share pool 0 (tests/conftest.py)
    )


async def wipe(devnet: DevnetState, prefix: str) -> int:
    """Delete every key of the orchestrator's store (what FLUSHDB does to a store of its own); returns how many."""
    redis = connect(devnet.redis_url)
    try:
        keys = [key async for key in redis.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await redis.delete(*keys)
        return len(keys)
    finally:
        await redis.aclose()


async def cli(env: dict[str, str], *args: str) -> tuple[int, str]:
    """`primenet orchestrator ARGS` as a process; its exit code and its output (stdout, then stderr)."""
    process = await asyncio.create_subprocess_exec(
        str(PRIMENET), "orchestrator", *args, env=env, stdout=PIPE, stderr=PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return int(process.returncode or 0), out.decode() + err.decode()


@pytest.fixture
async def admin_clients() -> AsyncIterator[list[httpx.AsyncClient]]:
    clients: list[httpx.AsyncClient] = []
    yield clients
    for client in clients:
        await client.aclose()


async def test_a_new_deployment_on_an_empty_pool_does_not_hold(
    devnet: DevnetState, own_pool: int, admin_clients: list[httpx.AsyncClient]
) -> None:
    prefix = "g" + secrets.token_hex(4)
    port = free_port()
    discovery_settings = DiscoverySettings(
        redis_url=devnet.redis_url,
        rpc_url=devnet.rpc_url,
        deployment_file=Path(devnet.deployment_file),
        key_prefix="d" + prefix,
    )
    with ExitStack() as stack:
        discovery_url = stack.enter_context(serve_in_thread(create_discovery(discovery_settings), port=free_port()))
        settings = orchestrator_settings(devnet, prefix, own_pool, discovery_url, port)
        url = stack.enter_context(serve_in_thread(create_orchestrator(settings, manager), port=port))
        admin = httpx.AsyncClient(base_url=url, headers=ADMIN, timeout=30)
        admin_clients.append(admin)
        # The start check ran before the app served: the store is marked already, nothing holds.
        state = (await admin.get("/store")).json()
        assert state["hold"] is False, state
        assert state["marker"]["how"] == "fresh", state
        assert state["marker"]["pool_id"] == own_pool, state
        health = (await admin.get("/health")).json()
        assert health["store"] == "ok", health
        assert "primenet_orchestrator_store_hold 0.0" in (await admin.get("/metrics/")).text


async def test_a_lost_store_holds_every_task_until_the_operator_confirms(
    devnet: DevnetState,
    own_pool: int,
    new_node: Any,
    tmp_path: Path,
    docker_client: Any,
    admin_clients: list[httpx.AsyncClient],
) -> None:
    prefix = "g" + secrets.token_hex(4)
    node: LocalAccount = await new_node(validated=True)
    address = node.address.lower()
    orch_port, miner_port = free_port(), free_port()
    common: dict[str, Any] = {
        "redis_url": devnet.redis_url,
        "rpc_url": devnet.rpc_url,
        "deployment_file": Path(devnet.deployment_file),
    }
    discovery_settings = DiscoverySettings(**common, sync_interval_s=0.2, role_cache_s=0.5, key_prefix="d" + prefix)
    miner_settings = MinerSettings(
        **common,
        host="127.0.0.1",
        port=miner_port,
        pool_id=own_pool,
        storage_path=tmp_path / "storage",
        state_dir=tmp_path / "state",
        heartbeat_interval_s=0.3,
        heartbeat_max_backoff_s=1.0,
        discovery_check_interval_s=3600,
        role_cache_s=1,
        challenge_backend="numpy",
    )
    label = f"{LABEL_NODE}={address}"

    def containers() -> list[Any]:
        return list(docker_client.containers.list(all=True, filters={"label": [label]}, ignore_removed=True))

    with ExitStack() as stack:
        stack.callback(lambda: [c.remove(force=True) for c in containers()])
        discovery_url = stack.enter_context(serve_in_thread(create_discovery(discovery_settings), port=free_port()))
        settings = orchestrator_settings(devnet, prefix, own_pool, discovery_url, orch_port)
        miner_url = stack.enter_context(
            serve_in_thread(
                create_miner(miner_settings, MinerKeys(provider=provider, node=node), SPECS), port=miner_port
            )
        )
        miner_api = httpx.AsyncClient(base_url=miner_url, timeout=30)
        admin_clients.append(miner_api)

        async def miner_health() -> dict[str, Any]:
            return dict((await miner_api.get("/health")).json())

        async def beats_answered(count: int) -> None:
            """Wait until the miner has had `count` more replies proven and handled (or acted on)."""
            for _ in range(count):
                before = (await miner_health())["last_heartbeat_reply_at"] or 0.0

                async def newer(before: float = before) -> bool:
                    return bool(((await miner_health())["last_heartbeat_reply_at"] or 0.0) > before)

                await wait_for(newer, "the miner's next heartbeat reply")

        record = NodeRecord(
            node=node.address, provider=provider.address, ip="127.0.0.1", port=miner_port, pool_id=own_pool, specs=SPECS
        )
        async with httpx.AsyncClient(
            base_url=discovery_url, auth=RequestSigner(node, audience="discovery", chain_id=31337), timeout=30
        ) as http:
            assert (await http.put("/api/nodes", json=record.model_dump(mode="json"))).status_code == 200
        await bind_listed_specs(discovery_url, node.address)

        # --- the first life: a new deployment (an empty pool) runs a task on the node --------------------------
        with serve_in_thread(create_orchestrator(settings, manager), port=orch_port) as orch_url:
            admin = httpx.AsyncClient(base_url=orch_url, headers=ADMIN, timeout=60)
            admin_clients.append(admin)
            assert (await admin.get("/store")).json()["marker"]["how"] == "fresh"

            async def healthy() -> bool:
                response = await admin.get(f"/nodes/{address}")
                return response.status_code == 200 and response.json()["status"] == "healthy"

            await wait_for(healthy, "the node to join the pool and be Healthy")
            created = await admin.post(
                "/tasks",
                json={"name": "kept", "image": IMAGE, "command": ["sh", "-c", "sleep 300"], "entrypoint": None,
                      "env": {}, "gpus": 0, "nodes": 1, "requirements": "cpu:cores=1"},
            )  # fmt: skip
            assert created.status_code == 201, created.text
            first_task = created.json()["id"]

            async def running(task_id: str) -> str | None:
                found = [c for c in containers() if c.status == "running" and c.labels.get(LABEL_TASK) == task_id]
                return found[0].id if len(found) == 1 and len(containers()) == 1 else None

            container_id = await until(lambda: running(first_task), "the task container to run", 60)

        # --- the store is lost while the orchestrator is down ------------------------------------------------
        assert await wipe(devnet, prefix) > 0
        with serve_in_thread(create_orchestrator(settings, manager), port=orch_port) as orch_url:
            admin = httpx.AsyncClient(base_url=orch_url, headers=ADMIN, timeout=60)
            admin_clients.append(admin)
            # The node is re-learned (discovery lists it, its beats make it Healthy) and keeps beating...
            await wait_for(healthy, "the node to be re-learned and Healthy on the empty store")
            await beats_answered(3)
            # ...and its task container is the same one, untouched, still running.
            now = containers()
            assert [c.id for c in now] == [container_id], f"containers are now {now}"
            assert now[0].status == "running"
            assert (await miner_health())["orchestrator_hold"] is True
            state = (await admin.get("/store")).json()
            assert state["hold"] is True, state
            assert state["marker"] is None, state
            assert state["pool_nodes_on_chain"] >= 1, state
            health = (await admin.get("/health")).json()
            assert health["store"] == "hold", health
            assert health["status"] == "degraded", health
            metrics = (await admin.get("/metrics/")).text
            assert "primenet_orchestrator_store_hold 1.0" in metrics
            assert 'primenet_orchestrator_heartbeats_total{outcome="held"}' in metrics

            # The buyer may create a task during the hold: it is stored, and placed only once the hold ends.
            created = await admin.post(
                "/tasks",
                json={"name": "after", "image": IMAGE, "command": ["sh", "-c", "sleep 301"], "entrypoint": None,
                      "env": {}, "gpus": 0, "nodes": 1, "requirements": "cpu:cores=1"},
            )  # fmt: skip
            assert created.status_code == 201, created.text
            second_task = created.json()["id"]
            await beats_answered(2)
            assert [c.id for c in containers()] == [container_id]
            assert (await admin.get(f"/tasks/{second_task}")).json()["assignments"] == {}

            # A bad token is refused; the hold goes on.
            refused = await admin.post("/store/confirm", headers={"authorization": "Bearer " + "x" * 32})
            assert refused.status_code == 401
            assert refused.json()["error"]["code"] == "admin_token_invalid"
            assert (await admin.get("/store")).json()["hold"] is True

            # --- the operator confirms: the orchestrator behaves as usual from then on -------------------------
            env = {**os.environ, "PRIMENET_ADMIN_TOKEN": TOKEN}
            env.pop("PRIMENET_ADMIN_TOKEN_FILE", None)
            code, out = await cli(env, "confirm-store", "--yes", "--url", orch_url)
            assert code == 0, out
            assert "hold ended" in out, out
            new_container = await until(lambda: running(second_task), "the task created during the hold to run", 60)
            assert new_container != container_id
            assert (await miner_health())["orchestrator_hold"] is False
            state = (await admin.get("/store")).json()
            assert state["hold"] is False, state
            assert state["marker"]["how"] == "confirmed", state
            assert (await admin.get("/health")).json()["store"] == "ok"
            code, out = await cli(env, "confirm-store", "--yes", "--url", orch_url, "--json")
            assert code == 0, out
            assert '"ended": false' in out, out
