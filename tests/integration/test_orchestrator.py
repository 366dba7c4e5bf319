"""The orchestrator against the real devnet chain, Redis, discovery, dockerd, uvicorn and the real miner app.

One node goes the whole way: registered on chain, validated and uploaded to discovery -> Healthy without manual
steps -> runs a task whose logs come back through the orchestrator -> its miner stops: Unhealthy, Dead, ejected on
chain -> its miner starts again: Healthy -> the orchestrator is replaced by a new one on the same Redis and loses
nothing. Thresholds are short (heartbeats every 0.3 s, Unhealthy after 1.5 s, Dead after 3 s).
"""

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
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
from primenet.miner.runner import LABEL_NODE
from primenet.miner.settings import MinerKeys, MinerSettings
from primenet.orchestrator.app import create_app as create_orchestrator
from primenet.orchestrator.settings import OrchestratorSettings
from service_apps import orchestrator_settings as fast_settings
from waiting import wait_for

NewNode = Callable[..., Awaitable[LocalAccount]]
IMAGE = "local/primenet-busybox:1"
SPECS = ComputeSpecs(cpu_model="test cpu", cpu_cores=2, ram_mib=4096, storage_path="/tmp", storage_free_gb=10.0)
TOKEN = "orchestrator-admin-token-0123456789"
ADMIN = {"authorization": f"Bearer {TOKEN}"}
manager = role_account("orchestrator")
provider = role_account("provider")


def discovery_settings(devnet: DevnetState, prefix: str) -> DiscoverySettings:
    return DiscoverySettings(
        redis_url=devnet.redis_url,
        rpc_url=devnet.rpc_url,
        deployment_file=Path(devnet.deployment_file),
        sync_interval_s=0.2,
        role_cache_s=0.5,
        key_prefix=prefix,
    )


def orchestrator_settings(devnet: DevnetState, discovery_url: str, prefix: str, port: int) -> OrchestratorSettings:
    # The scheduler's safety net only: every placement here must follow from an event.
    return fast_settings(
        devnet, discovery_url=discovery_url, prefix=prefix, port=port, admin_token=TOKEN, schedule_interval_s=30.0
    )


def miner_settings(devnet: DevnetState, tmp_path: Path, port: int, discovery_url: str) -> MinerSettings:
    return MinerSettings(
        host="127.0.0.1",
        port=port,
        rpc_url=devnet.rpc_url,
        deployment_file=Path(devnet.deployment_file),
        discovery_url=discovery_url,
        pool_id=0,
        storage_path=tmp_path / "storage",
        state_dir=tmp_path / "state",
        heartbeat_interval_s=0.3,
        heartbeat_max_backoff_s=1.0,
        discovery_check_interval_s=3600,
        role_cache_s=1,
        challenge_backend="numpy",
    )


async def upload(discovery_url: str, node: LocalAccount, port: int) -> None:
    record = NodeRecord(node=node.address, provider=provider.address, ip="127.0.0.1", port=port, pool_id=0, specs=SPECS)
    async with httpx.AsyncClient(
        base_url=discovery_url, auth=RequestSigner(node, audience="discovery", chain_id=31337), timeout=30
    ) as http:
        response = await http.put("/api/nodes", json=record.model_dump(mode="json"))
    assert response.status_code == 200, response.text
    await bind_listed_specs(discovery_url, node.address)  # as the validator does once the node passed


class Api:
    """The orchestrator's admin API as an operator uses it."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def get(self, path: str, **params: Any) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.url, headers=ADMIN, timeout=30) as http:
            return await http.get(path, params=params)

    async def send(self, method: str, path: str, body: Any = None) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.url, headers=ADMIN, timeout=60) as http:
            return await http.request(method, path, json=body)

    async def status(self, node: str) -> str | None:
        response = await self.get(f"/nodes/{node}")
        return str(response.json()["status"]) if response.status_code == 200 else None

    async def wait_status(self, node: str, wanted: str, timeout_s: float = 60.0) -> None:
        async def reached() -> bool:
            return await self.status(node) == wanted

        await wait_for(reached, f"node {node} to be {wanted} (now {await self.status(node)})", timeout_s)


async def test_a_node_goes_healthy_runs_a_task_dies_comes_back_and_survives_a_restart(
    devnet: DevnetState, network: Network, new_node: NewNode, tmp_path: Path, docker_client: Any
) -> None:
    prefix = "o" + secrets.token_hex(4)
    node = await new_node(validated=True)
    address = node.address.lower()
    miner_port, orch_port = free_port(), free_port()
    with ExitStack() as stack:
        discovery_url = stack.enter_context(
            serve_in_thread(create_discovery(discovery_settings(devnet, "d" + prefix)), port=free_port())
        )
        settings = orchestrator_settings(devnet, discovery_url, prefix, orch_port)
        orchestrator = ExitStack()
        api = Api(orchestrator.enter_context(serve_in_thread(create_orchestrator(settings, manager), port=orch_port)))
        stack.callback(lambda: orchestrator.close())
        keys = MinerKeys(provider=provider, node=node)
        msettings = miner_settings(devnet, tmp_path, miner_port, discovery_url)
        miner = ExitStack()
        miner.enter_context(serve_in_thread(create_miner(msettings, keys, SPECS), port=miner_port))
        stack.callback(miner.close)
        stack.callback(remove_containers, docker_client, address)

        # Registered, validated, uploaded: the orchestrator learns of it from discovery's feed, invites, and the
        # miner joins the pool on chain and heartbeats.
        await upload(discovery_url, node, miner_port)
        await api.wait_status(address, "healthy")
        assert await network.is_node_in_pool(0, address)

        created = await api.send(
            "POST",
            "/tasks",
            {"name": "hello", "image": IMAGE, "command": ["sh", "-c", "echo hello from primenet; sleep 300"],
             "entrypoint": None, "env": {}, "gpus": 0, "nodes": 1, "requirements": "cpu:cores=1"},
        )  # fmt: skip
        assert created.status_code == 201, created.text
        task_id = created.json()["id"]

        async def running() -> bool:
            task = (await api.get(f"/tasks/{task_id}")).json()
            return task["assignments"].get(address, {}).get("state") == "running"

        await wait_for(running, "the task to run on the node")
        logs = await api.get(f"/nodes/{address}/logs", tail=10)
        assert logs.status_code == 200, logs.text
        assert logs.json()["task_id"] == task_id
        assert "hello from primenet" in logs.json()["logs"]
        view = (await api.get(f"/nodes/{address}")).json()
        assert view["task_id"] == task_id
        assert view["task_state"] == "running"
        assert view["version"]

        # The miner stops: Unhealthy, Dead, then ejected on chain.
        miner.close()
        unreachable = await api.get(f"/nodes/{address}/logs")
        assert unreachable.status_code == 502
        assert unreachable.json()["error"]["code"] == "miner_unreachable"
        await api.wait_status(address, "unhealthy", 10)
        await api.wait_status(address, "ejected", 20)
        assert not await network.is_node_in_pool(0, address)

        # It starts again: it heartbeats, is re-invited, joins again and is Healthy with its task back.
        miner = ExitStack()
        miner.enter_context(serve_in_thread(create_miner(msettings, keys, SPECS), port=miner_port))
        await api.wait_status(address, "healthy")
        assert await network.is_node_in_pool(0, address)
        await wait_for(running, "the task to run again after the node came back")

        # The orchestrator is replaced by a new one on the same Redis: nodes, tasks and assignments are all there.
        before_nodes = (await api.get("/nodes")).json()
        before_task = (await api.get(f"/tasks/{task_id}")).json()
        orchestrator.close()
        orchestrator = ExitStack()
        orchestrator.enter_context(serve_in_thread(create_orchestrator(settings, manager), port=orch_port))
        after_nodes = (await api.get("/nodes")).json()
        assert [n["address"] for n in after_nodes["nodes"]] == [n["address"] for n in before_nodes["nodes"]]
        assert after_nodes["counts"]["healthy"] == 1
        after_task = (await api.get(f"/tasks/{task_id}")).json()
        assert after_task["name"] == before_task["name"]
        assert set(after_task["assignments"]) == {address}
        await asyncio.sleep(2 * settings.unhealthy_after_s)  # the new loops run: the node stays Healthy, task kept
        assert await api.status(address) == "healthy"
        assert (await api.get(f"/tasks/{task_id}")).json()["assignments"][address]["state"] == "running"

        # Deleting the task withdraws it: the miner removes the container.
        assert (await api.send("DELETE", f"/tasks/{task_id}")).json() == {"deleted": task_id}

        async def removed() -> bool:
            label = f"{LABEL_NODE}={address}"
            return not docker_client.containers.list(all=True, filters={"label": [label]}, ignore_removed=True)

        await wait_for(removed, "the task container to be removed")
        health = (await api.get("/health")).json()
        assert health["redis"] == "ok"
        assert {"monitor", "inviter", "health", "scheduler"} <= set(health["loops"])
        metrics = (await api.get("/metrics/")).text
        assert 'primenet_orchestrator_nodes{status="healthy"}' in metrics
        assert 'primenet_orchestrator_ejections_total{result="sent"}' in metrics


def remove_containers(docker_client: Any, address: str) -> None:
    for container in docker_client.containers.list(
        all=True, filters={"label": [f"{LABEL_NODE}={address}"]}, ignore_removed=True
    ):
        container.remove(force=True)


async def test_a_changed_assignment_reaches_the_miner_before_its_next_heartbeat(
    devnet: DevnetState, new_node: NewNode, tmp_path: Path, docker_client: Any
) -> None:
    """Miners beat every minute here; the orchestrator's nudge makes a new task run, and a deleted one stop, within
    seconds: the assignment still comes in a heartbeat reply, just an earlier one."""
    prefix = "n" + secrets.token_hex(4)
    node = await new_node(validated=True)
    address = node.address.lower()
    miner_port, orch_port = free_port(), free_port()
    slow = {"heartbeat_interval_s": 60.0, "unhealthy_after_s": 120.0, "dead_after_s": 240.0}
    with ExitStack() as stack:
        discovery_url = stack.enter_context(
            serve_in_thread(create_discovery(discovery_settings(devnet, "d" + prefix)), port=free_port())
        )
        settings = orchestrator_settings(devnet, discovery_url, prefix, orch_port).model_copy(update=slow)
        api = Api(stack.enter_context(serve_in_thread(create_orchestrator(settings, manager), port=orch_port)))
        msettings = miner_settings(devnet, tmp_path, miner_port, discovery_url).model_copy(update=slow)
        stack.enter_context(serve_in_thread(create_miner(msettings, MinerKeys(provider, node), SPECS), port=miner_port))
        stack.callback(remove_containers, docker_client, address)
        await upload(discovery_url, node, miner_port)
        await api.wait_status(address, "healthy")  # the invite itself makes the miner beat at once

        created = await api.send(
            "POST", "/tasks", {"name": "nudged", "image": IMAGE, "command": ["sleep", "300"], "nodes": 1}
        )
        assert created.status_code == 201, created.text
        label = {"label": [f"{LABEL_NODE}={address}"]}

        async def running() -> bool:
            return any(c.status == "running" for c in docker_client.containers.list(filters=label, ignore_removed=True))

        await wait_for(running, "the task container, well before the next regular heartbeat", timeout_s=30)
        assert (await api.send("DELETE", f"/tasks/{created.json()['id']}")).status_code == 200

        async def removed() -> bool:
            return not docker_client.containers.list(all=True, filters=label, ignore_removed=True)

        await wait_for(removed, "the container's removal, well before the next regular heartbeat", timeout_s=30)
        metrics = (await api.get("/metrics/")).text
        assert 'primenet_orchestrator_nudges_total{result="sent"}' in metrics


async def test_a_task_the_providers_policy_refuses_is_failed_with_the_reason_and_the_miner_keeps_beating(
    devnet: DevnetState, new_node: NewNode, tmp_path: Path, docker_client: Any
) -> None:
    """A provider that runs only its own registry's images gets a task with another image: the heartbeats report it
    failed with the refusal, no container is created, and the node stays Healthy (no crash loop)."""
    prefix = "r" + secrets.token_hex(4)
    node = await new_node(validated=True)
    address = node.address.lower()
    miner_port, orch_port = free_port(), free_port()
    with ExitStack() as stack:
        discovery_url = stack.enter_context(
            serve_in_thread(create_discovery(discovery_settings(devnet, "d" + prefix)), port=free_port())
        )
        settings = orchestrator_settings(devnet, discovery_url, prefix, orch_port)
        api = Api(stack.enter_context(serve_in_thread(create_orchestrator(settings, manager), port=orch_port)))
        policy = {"task_network": "none", "task_image_allowlist": ["registry.provider.test/*"]}
        msettings = miner_settings(devnet, tmp_path, miner_port, discovery_url).model_copy(update=policy)
        stack.enter_context(serve_in_thread(create_miner(msettings, MinerKeys(provider, node), SPECS), port=miner_port))
        stack.callback(remove_containers, docker_client, address)
        await upload(discovery_url, node, miner_port)
        await api.wait_status(address, "healthy")

        created = await api.send("POST", "/tasks", {"name": "refused", "image": IMAGE, "command": ["true"]})
        assert created.status_code == 201, created.text
        task_id = created.json()["id"]

        async def failed() -> bool:
            task = (await api.get(f"/tasks/{task_id}")).json()
            return task["assignments"].get(address, {}).get("state") == "failed"

        await wait_for(failed, "the refused task to be reported failed")
        redis = connect(devnet.redis_url)
        try:
            message = await redis.hget(f"{prefix}:node:{address}", "task_message")
        finally:
            await redis.aclose()
        assert message is not None
        assert "refused" in str(message)
        assert "image allowlist" in str(message)
        beats = (await api.get(f"/nodes/{address}")).json()["last_heartbeat"]
        await wait_for(lambda: _later_beat(api, address, beats), "another heartbeat after the refusal", timeout_s=30)
        assert await api.status(address) == "healthy"
        assert docker_client.containers.list(all=True, filters={"label": [f"{LABEL_NODE}={address}"]}) == []


async def _later_beat(api: Api, address: str, since: float) -> bool:
    return float((await api.get(f"/nodes/{address}")).json()["last_heartbeat"] or 0) > since
