"""The miner's API and heartbeat loop against the real devnet chain, Redis, dockerd, uvicorn, discovery and
orchestrator.

The miner heartbeats to the real orchestrator (`primenet.orchestrator.app.create_app`), which carries its
assignments: a test gives the node work by creating a task (`POST /tasks`) and sees what the heartbeats reported
through the orchestrator's admin API. Its inviter makes one round at start, before the node is listed, and no other:
the tests send the pool owner's invites themselves and check the miner's answers to them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from prometheus_client.parser import text_string_to_metric_families

from binding import bind_listed_specs
from primenet.chain.contracts import Network
from primenet.chain.eip712 import PoolInvite
from primenet.core.auth import RequestSigner
from primenet.core.challenge.wire import Commitment, Opening
from primenet.core.models import ComputeSpecs, TaskState
from primenet.devnet.accounts import role_account
from primenet.devnet.local import DevnetState
from primenet.devnet.processes import free_port
from primenet.devnet.serve import serve_in_thread
from primenet.discovery.app import create_app as create_discovery
from primenet.discovery.settings import DiscoverySettings
from primenet.miner.app import create_app
from primenet.miner.onboarding import onboard, specs_source
from primenet.miner.runner import LABEL_NODE
from primenet.miner.settings import MinerKeys, MinerSettings
from primenet.orchestrator.app import create_app as create_orchestrator
from primenet.orchestrator.models import AssignmentView, NodeView, TaskView
from primenet.orchestrator.settings import OrchestratorSettings
from primenet.validator.verifier import Throughput, ThroughputTable, new_challenge, reveal, verify
from waiting import until

NewNode = Callable[..., Awaitable[LocalAccount]]
IMAGE = "local/primenet-busybox:1"
SPECS = ComputeSpecs(cpu_model="test cpu", cpu_cores=2, ram_mib=4096, storage_path="/tmp", storage_free_gb=10.0)
ADMIN_TOKEN = "miner-api-orchestrator-token-0123456789"
manager = role_account("orchestrator")  # compute manager of pool 0
provider = role_account("provider")
validator = role_account("validator")


class Orchestrator:
    """The real orchestrator, seen as its operator sees it (admin API): its tasks and what the heartbeats reported."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def request(self, method: str, path: str, body: Any = None) -> httpx.Response:
        headers = {"authorization": f"Bearer {ADMIN_TOKEN}"}
        async with httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30) as http:
            return await http.request(method, path, json=body)

    async def node(self, address: str) -> NodeView | None:
        response = await self.request("GET", f"/nodes/{address.lower()}")
        if response.status_code == 404:
            return None
        assert response.status_code == 200, response.text
        return NodeView.model_validate(response.json())

    async def task(self, task_id: str) -> TaskView:
        response = await self.request("GET", f"/tasks/{task_id}")
        assert response.status_code == 200, response.text
        return TaskView.model_validate(response.json())

    async def run(self, name: str, script: str) -> TaskView:
        """A task for one node: `sh -c script` in the local busybox image."""
        body = {"name": name, "image": IMAGE, "command": ["sh", "-c", script], "nodes": 1}
        response = await self.request("POST", "/tasks", body)
        assert response.status_code == 201, response.text
        return TaskView.model_validate(response.json())

    async def withdraw(self, task: TaskView) -> None:
        response = await self.request("DELETE", f"/tasks/{task.id}")
        assert response.status_code == 200, response.text

    async def heartbeats(self) -> float:
        """Heartbeats the orchestrator accepted (its Prometheus counter; this test's miner is the only one beating)."""
        text = (await self.request("GET", "/metrics/")).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "primenet_orchestrator_heartbeats_total" and sample.labels["outcome"] == "ok":
                    return sample.value
        raise AssertionError("the orchestrator exports no count of accepted heartbeats")

    async def listed(self, address: str) -> NodeView:
        """The node's view once the orchestrator learned of it from discovery's feed."""
        return await until(lambda: self.node(address), f"the orchestrator to list {address}")

    async def beat(self, address: str, after: float, match: Callable[[NodeView], bool]) -> NodeView:
        """The node's view once a heartbeat received after `after` told the orchestrator what `match` wants."""

        async def seen() -> NodeView | None:
            view = await self.node(address)
            beaten = view is not None and view.last_heartbeat is not None and view.last_heartbeat > after
            return view if beaten and view is not None and match(view) else None

        return await until(seen, f"a heartbeat of {address} after {after}")

    async def running(self, task: TaskView, address: str, after: float = 0) -> AssignmentView:
        """What a heartbeat received after `after` reported of `task` on the node: running, in its container."""

        async def seen() -> AssignmentView | None:
            reported = (await self.task(task.id)).assignments.get(address.lower())
            ok = (
                reported is not None
                and reported.updated_at > after
                and reported.state == TaskState.RUNNING
                and reported.details is not None
                and bool(reported.details.container_id)
            )
            return reported if ok else None

        return await until(seen, f"a heartbeat of {address} reporting task {task.name} running")


@pytest.fixture
async def node(new_node: NewNode, docker_client: Any) -> AsyncIterator[LocalAccount]:
    """A validated node of the devnet provider; its task containers are removed afterwards."""
    account = await new_node(validated=True)
    yield account
    label = f"{LABEL_NODE}={account.address.lower()}"
    for container in docker_client.containers.list(all=True, filters={"label": [label]}, ignore_removed=True):
        container.remove(force=True)


@pytest.fixture
def discovery_url(devnet: DevnetState) -> Iterator[str]:
    settings = DiscoverySettings(
        redis_url=devnet.redis_url,
        rpc_url=devnet.rpc_url,
        deployment_file=Path(devnet.deployment_file),
        sync_interval_s=0.2,
        key_prefix="mk" + secrets.token_hex(4),
    )
    with serve_in_thread(create_discovery(settings), port=free_port()) as url:
        yield url


@pytest.fixture
async def orchestrator(devnet: DevnetState, discovery_url: str) -> AsyncIterator[Orchestrator]:
    """The pool's orchestrator on the test Redis, chain and discovery; it invites no node (see the module docstring).
    Its thresholds are far from the tests' durations, so no node changes status for want of heartbeats."""
    async with running_orchestrator(devnet, discovery_url, invite_on_discovery=False) as peer:
        yield peer


@contextlib.asynccontextmanager
async def running_orchestrator(devnet: DevnetState, discovery_url: str, **changes: Any) -> AsyncIterator[Orchestrator]:
    """The pool's orchestrator, its inviter past its first (empty) round, then only every hour (and, unless
    `invite_on_discovery=False`, whenever a node becomes Discovered)."""
    port = free_port()
    settings = OrchestratorSettings(
        redis_url=devnet.redis_url,
        rpc_url=devnet.rpc_url,
        deployment_file=Path(devnet.deployment_file),
        discovery_url=discovery_url,
        admin_token=ADMIN_TOKEN,
        public_url=f"http://127.0.0.1:{port}",
        heartbeat_interval_s=0.2,
        unhealthy_after_s=60.0,
        dead_after_s=120.0,
        reassign_grace_s=60.0,
        invite_interval_s=3600.0,
        feed_timeout_s=1.0,
        key_prefix="mo" + secrets.token_hex(4),
        **changes,
    )
    with serve_in_thread(create_orchestrator(settings, manager), port=port) as url:
        peer = Orchestrator(url)

        async def invited_once() -> bool | None:
            loops = (await peer.request("GET", "/health")).json()["loops"]
            return True if loops.get("inviter", {}).get("last_run_at") else None

        await until(invited_once, "the inviter's first (empty) round")
        yield peer


def miner_settings(devnet: DevnetState, tmp_path: Path, discovery_url: str, **changes: Any) -> MinerSettings:
    return MinerSettings(
        host="127.0.0.1",
        port=free_port(),
        rpc_url=devnet.rpc_url,
        deployment_file=Path(devnet.deployment_file),
        discovery_url=discovery_url,
        pool_id=0,
        storage_path=tmp_path / "storage",
        state_dir=tmp_path / "state",
        **{
            "heartbeat_interval_s": 0.2,
            "discovery_check_interval_s": 3600,
            "role_cache_s": 1,
            "challenge_backend": "numpy",
            **changes,
        },
    )


async def listed(settings: MinerSettings, node: LocalAccount, orchestrator: Orchestrator) -> None:
    """Onboard as `primenet miner run` does (the node is registered already: only its record is uploaded), then wait
    until the orchestrator lists it, so that its first heartbeat is not refused as an unknown node's."""
    # The specs the miner's publisher detects and re-uploads: the ones the validator would have challenged and bound.
    await onboard(settings, MinerKeys(provider=provider, node=node), specs=specs_source(settings)())
    await bind_listed_specs(settings.discovery_url, node.address)  # as the validator does once the node passed
    await orchestrator.listed(node.address)


@pytest.fixture
async def miner(
    devnet: DevnetState, node: LocalAccount, tmp_path: Path, discovery_url: str, orchestrator: Orchestrator
) -> AsyncIterator[str]:
    settings = miner_settings(devnet, tmp_path, discovery_url)
    app = create_app(settings, MinerKeys(provider=provider, node=node), SPECS)
    with serve_in_thread(app, port=settings.port) as url:
        await listed(settings, node, orchestrator)
        yield url


def client(url: str, account: LocalAccount, audience: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, auth=RequestSigner(account, audience=audience, chain_id=31337), timeout=60)


async def invite_body(network: Network, node: str, orchestrator_url: str, **changes: Any) -> dict[str, Any]:
    block = await network.w3.eth.get_block("latest")
    invite = PoolInvite(
        domain_id=0, pool_id=0, node=node, nonce=secrets.randbits(64), expiry=int(block["timestamp"]) + 600
    )
    body = {
        "domain_id": invite.domain_id,
        "pool_id": invite.pool_id,
        "node": invite.node,
        "nonce": invite.nonce,
        "expiry": invite.expiry,
        "signature": network.sign_invite(manager, invite).hex(),
        "orchestrator_url": orchestrator_url,
    }
    return {**body, **changes}


async def test_invite_is_checked_then_joins_the_pool(
    network: Network, miner: str, node: LocalAccount, tmp_path: Path, orchestrator: Orchestrator
) -> None:
    audience = node.address.lower()
    body = await invite_body(network, node.address, orchestrator.url)
    async with httpx.AsyncClient(base_url=miner) as plain:
        assert (await plain.post("/invite", json=body)).json()["error"]["code"] == "auth_missing"
    async with client(miner, manager, "miner") as wrong_audience:
        response = await wrong_audience.post("/invite", json=body)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "audience_mismatch"
    async with client(miner, Account.create(), audience) as stranger:
        response = await stranger.post("/invite", json=body)
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "not_pool_owner"
    async with client(miner, manager, audience) as owner:
        other = await invite_body(network, Account.create().address, orchestrator.url)
        response = await owner.post("/invite", json=other)
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "invite_wrong_node"
        response = await owner.post("/invite", json={**body, "pool_id": 7})
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "invite_pool_mismatch"
        assert not await network.is_node_in_pool(0, node.address)

        response = await owner.post("/invite", json=body)
        assert response.status_code == 200, response.text
        assert response.json()["result"] == "joined"
        assert await network.is_node_in_pool(0, node.address)
        again = await owner.post("/invite", json=await invite_body(network, node.address, orchestrator.url))
        assert again.json()["result"] == "already_in_pool"

    state_file = tmp_path / "state" / "miner-state.json"
    assert state_file.stat().st_mode & 0o777 == 0o600
    assert orchestrator.url in state_file.read_text()
    await orchestrator.beat(audience, 0, lambda view: view.address == audience and view.task_id is None)


async def test_a_node_that_becomes_discovered_is_invited_at_once(
    devnet: DevnetState, network: Network, node: LocalAccount, tmp_path: Path, discovery_url: str
) -> None:
    """Issue 16: the inviter ran only every `invite_interval_s`; a node the monitor discovers wakes it. The
    interval here is an hour, so only the wake can bring the node into the pool within the wait."""
    async with running_orchestrator(devnet, discovery_url) as orchestrator:
        settings = miner_settings(devnet, tmp_path, discovery_url)
        app = create_app(settings, MinerKeys(provider=provider, node=node), SPECS)
        with serve_in_thread(app, port=settings.port):
            await listed(settings, node, orchestrator)

            async def joined() -> bool | None:
                return True if await network.is_node_in_pool(0, node.address) else None

            await until(joined, "the orchestrator's invite and the miner's join", timeout_s=30.0, every_s=0.1)
            view = await orchestrator.beat(node.address.lower(), 0, lambda view: view.status == "healthy")
            assert view.address == node.address.lower()


async def test_challenge_rounds_answer_validators_only(miner: str, node: LocalAccount) -> None:
    issued = new_challenge(64, rows_to_open=16, recompute_rows=4)
    payload = issued.challenge.model_dump(mode="json")
    async with client(miner, manager, node.address.lower()) as not_validator:
        response = await not_validator.post("/challenge/commit", json=payload)
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "signer_unauthorized"
    async with client(miner, validator, node.address.lower()) as ours:
        response = await ours.post("/challenge/commit", json=payload)
        assert response.status_code == 200, response.text
        commitment = Commitment.model_validate(response.json())
        committed_at = time.time()
        assert (await ours.post("/challenge/commit", json=payload)).json()["error"]["code"] == "challenge_exists"
        opened = await ours.post("/challenge/open", json=reveal(issued).model_dump(mode="json"))
        assert opened.status_code == 200, opened.text
        opening = Opening.model_validate(opened.json())
        # A table entry for the test host's "cpu": the timing bound is then the policy's slack (n is tiny).
        table = ThroughputTable(models={"cpu": Throughput(float64=1, float32=1, float16=1, bfloat16=1)})
        verdict = verify(issued, commitment, opening, "cpu", committed_at=committed_at, now=time.time(), table=table)
        assert verdict.ok, verdict
        replay = await ours.post("/challenge/open", json=reveal(issued).model_dump(mode="json"))
        assert replay.status_code == 404
        assert replay.json()["error"]["code"] == "challenge_not_found"


async def test_heartbeats_apply_assignments_and_serve_logs(
    network: Network, miner: str, node: LocalAccount, orchestrator: Orchestrator, docker_client: Any
) -> None:
    audience = node.address.lower()
    async with client(miner, manager, audience) as owner:
        assert (await owner.get("/task/logs")).json()["error"]["code"] == "no_task"
        body = await invite_body(network, node.address, orchestrator.url)
        assert (await owner.post("/invite", json=body)).is_success

        hb1 = await orchestrator.run("hb-1", "echo hello from the task; sleep 300")
        first = await orchestrator.running(hb1, audience)
        assert first.details is not None
        logs = await owner.get("/task/logs", params={"tail": 10})
        assert logs.status_code == 200
        assert "hello from the task" in logs.json()["logs"]
        async with client(miner, Account.create(), audience) as stranger:
            assert (await stranger.get("/task/logs")).status_code == 403

        restarted = await owner.post("/task/restart")
        assert restarted.status_code == 200, restarted.text
        assert restarted.json()["details"]["started_at"] != first.details.started_at

        # The node's assignment changes from hb-1 to hb-2 (one task per node: hb-2 waits until hb-1 is withdrawn).
        changed_at = time.time()
        hb2 = await orchestrator.run("hb-2", "sleep 300")
        await orchestrator.withdraw(hb1)
        second = await orchestrator.running(hb2, audience, after=changed_at)
        assert second.details is not None
        assert second.details.container_id != first.details.container_id
        label = f"{LABEL_NODE}={audience}"
        names = [
            c.name for c in docker_client.containers.list(all=True, filters={"label": [label]}, ignore_removed=True)
        ]
        assert names == [hb2.spec().container_name()]

        await orchestrator.withdraw(hb2)
        removed = await orchestrator.beat(audience, time.time(), lambda view: view.task_id is None)
        assert removed.last_heartbeat is not None
        # The one after the removal.
        await orchestrator.beat(audience, removed.last_heartbeat, lambda view: view.task_id is None)
        assert docker_client.containers.list(all=True, filters={"label": [label]}, ignore_removed=True) == []


async def test_kill_9_and_restart_keeps_the_task_container(
    devnet: DevnetState,
    network: Network,
    node: LocalAccount,
    tmp_path: Path,
    orchestrator: Orchestrator,
    discovery_url: str,
    docker_client: Any,
) -> None:
    settings = miner_settings(devnet, tmp_path, discovery_url)
    env = {
        **os.environ,
        "PRIMENET_PROVIDER_KEY": provider.key.hex(),
        "PRIMENET_NODE_KEY": node.key.hex(),
        "PRIMENET_HOST": "127.0.0.1",
        "PRIMENET_PORT": str(settings.port),
        "PRIMENET_RPC_URL": devnet.rpc_url,
        "PRIMENET_DEPLOYMENT_FILE": devnet.deployment_file,
        "PRIMENET_DISCOVERY_URL": discovery_url,
        "PRIMENET_STORAGE_PATH": str(tmp_path / "storage"),
        "PRIMENET_STATE_DIR": str(tmp_path / "state"),
        "PRIMENET_VISIBLE_DEVICES": "none",
        "PRIMENET_HEARTBEAT_INTERVAL_S": "0.3",
        "PRIMENET_CHALLENGE_BACKEND": "numpy",
    }
    primenet = str(Path(sys.executable).parent / "primenet")
    url = f"http://127.0.0.1:{settings.port}"
    log = (tmp_path / "miner.log").open("ab")
    address = node.address.lower()

    async def start() -> asyncio.subprocess.Process:
        process = await asyncio.create_subprocess_exec(primenet, "miner", "run", env=env, stdout=log, stderr=log)
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient() as plain:
            while True:
                assert process.returncode is None, (tmp_path / "miner.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "the miner did not start"
                try:
                    if (await plain.get(f"{url}/health")).is_success:
                        return process
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)

    process = await start()
    try:
        await bind_listed_specs(discovery_url, address)  # `miner run` uploaded it; the validator would bind it
        await orchestrator.listed(address)  # `miner run` uploaded the node's record to discovery
        async with client(url, manager, address) as owner:
            body = await invite_body(network, node.address, orchestrator.url)
            assert (await owner.post("/invite", json=body)).is_success
        k9 = await orchestrator.run("k9", "sleep 300")
        before = await orchestrator.running(k9, address)
        assert before.details is not None
        process.send_signal(signal.SIGKILL)
        await process.wait()
        killed_at = time.time()
        container = docker_client.containers.get(k9.spec().container_name())
        assert container.id == before.details.container_id
        assert container.status == "running"

        process = await start()
        after = await orchestrator.beat(address, killed_at, lambda view: True)
        assert after.task_id == k9.id
        assert after.task_state == TaskState.RUNNING  # the first heartbeat after the restart already reports it
        reported = (await orchestrator.task(k9.id)).assignments[address]
        assert reported.details is not None
        assert reported.details.container_id == container.id
        assert docker_client.containers.get(container.id).attrs["RestartCount"] == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        log.close()


async def test_an_ejected_node_stops_heartbeats_and_its_task(
    devnet: DevnetState,
    network: Network,
    node: LocalAccount,
    orchestrator: Orchestrator,
    discovery_url: str,
    docker_client: Any,
    tmp_path: Path,
) -> None:
    """Ejected on chain while it runs (the pool owner's call, not the miner's): the miner's membership check sees it,
    removes the task container and stops beating, so a node outside the pool never works for it."""
    settings = miner_settings(devnet, tmp_path, discovery_url, discovery_check_interval_s=0.5)
    app = create_app(settings, MinerKeys(provider=provider, node=node), SPECS)
    with serve_in_thread(app, port=settings.port) as url:
        await listed(settings, node, orchestrator)
        async with client(url, manager, node.address.lower()) as owner:
            body = await invite_body(network, node.address, orchestrator.url)
            assert (await owner.post("/invite", json=body)).is_success
        task = await orchestrator.run("ej-1", "sleep 300")
        await orchestrator.running(task, node.address)

        await network.eject_node(network.transactor(manager), 0, node.address)
        label = {"label": [f"{LABEL_NODE}={node.address.lower()}"]}
        deadline = time.monotonic() + 30
        while docker_client.containers.list(all=True, filters=label, ignore_removed=True):
            assert time.monotonic() < deadline, "the task container outlived the ejection"
            await asyncio.sleep(0.2)
        state = json.loads((tmp_path / "state" / "miner-state.json").read_text())
        assert (state["pool_id"], state["orchestrator_url"], state["assignment"]) == (None, None, None)
        quiet_from = await orchestrator.heartbeats()
        await asyncio.sleep(5 * settings.heartbeat_interval_s)
        assert await orchestrator.heartbeats() <= quiet_from + 1  # at most one beat that was already on its way
