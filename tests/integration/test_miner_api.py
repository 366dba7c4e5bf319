"""The miner's API and heartbeat loop against the real devnet chain, Redis, dockerd and uvicorn.

The orchestrator service does not exist yet, so `OrchestratorPeer` below plays its `/heartbeat` route: a real
FastAPI app on a real server that checks the node's signature (audience "orchestrator") and answers with whatever
assignment the test sets. It is a test peer standing in for a service still to be written, not a mock of one.
"""

# No `from __future__ import annotations`: the peer's route dependency is a local object FastAPI must see as a value.
import asyncio
import json
import os
import secrets
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from fastapi import Depends, FastAPI

from primenet.chain.contracts import Network
from primenet.chain.eip712 import PoolInvite
from primenet.core.auth import RequestAuthenticator, RequestSigner, Signer
from primenet.core.challenge.wire import Commitment, Opening
from primenet.core.models import ComputeSpecs, Heartbeat, HeartbeatReply, TaskSpec, TaskState
from primenet.core.redisdb import connect
from primenet.devnet.accounts import role_account
from primenet.devnet.local import DevnetState
from primenet.devnet.processes import free_port
from primenet.devnet.serve import serve_in_thread
from primenet.discovery.app import create_app as create_discovery
from primenet.discovery.settings import DiscoverySettings
from primenet.miner.runner import LABEL_NODE
from primenet.miner.service import create_app
from primenet.miner.settings import MinerKeys, MinerSettings
from primenet.validator.verifier import Throughput, ThroughputTable, new_challenge, reveal, verify

NewNode = Callable[..., Awaitable[LocalAccount]]
IMAGE = "local/primenet-busybox:1"
SPECS = ComputeSpecs(cpu_model="test cpu", cpu_cores=2, ram_mib=4096, storage_path="/tmp", storage_free_gb=10.0)
manager = role_account("orchestrator")  # compute manager of pool 0
validator = role_account("validator")


class OrchestratorPeer:
    """Records signed heartbeats and replies with `assignment` (see the module docstring)."""

    def __init__(self, redis_url: str, chain_id: int) -> None:
        self.beats: list[Heartbeat] = []
        self.assignment: TaskSpec | None = None
        self.redis_url = redis_url
        self.chain_id = chain_id

    def app(self) -> FastAPI:
        app = FastAPI()
        auth = RequestAuthenticator(
            redis=connect(self.redis_url), audience="orchestrator", chain_id=self.chain_id, key_prefix="peer"
        )

        @app.post("/heartbeat")
        async def heartbeat(body: Heartbeat, signer: Annotated[Signer, Depends(auth)]) -> HeartbeatReply:
            assert signer.address == body.address
            self.beats.append(body)
            return HeartbeatReply(assignment=self.assignment)

        return app

    async def next_beat(self, after: float, match: Callable[[Heartbeat], bool], timeout_s: float = 30) -> Heartbeat:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for beat in list(self.beats):
                if beat.timestamp > after and match(beat):
                    return beat
            await asyncio.sleep(0.05)
        raise AssertionError(f"no matching heartbeat; last: {self.beats[-1:] if self.beats else None}")


@pytest.fixture
async def node(new_node: NewNode, docker_client: Any) -> AsyncIterator[LocalAccount]:
    """A validated node of the devnet provider; its task containers are removed afterwards."""
    account = await new_node(validated=True)
    yield account
    label = f"{LABEL_NODE}={account.address.lower()}"
    for container in docker_client.containers.list(all=True, filters={"label": [label]}):
        container.remove(force=True)


@pytest.fixture
def orchestrator(devnet: DevnetState) -> Iterator[tuple[OrchestratorPeer, str]]:
    peer = OrchestratorPeer(devnet.redis_url, devnet.chain_id)
    with serve_in_thread(peer.app(), port=free_port()) as url:
        yield peer, url


def miner_settings(devnet: DevnetState, tmp_path: Path, **changes: Any) -> MinerSettings:
    return MinerSettings(
        host="127.0.0.1",
        port=free_port(),
        rpc_url=devnet.rpc_url,
        deployment_file=Path(devnet.deployment_file),
        discovery_url="http://127.0.0.1:9",  # the API tests do not publish (the maintenance loop waits an hour)
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


@pytest.fixture
def miner(devnet: DevnetState, node: LocalAccount, tmp_path: Path) -> Iterator[str]:
    settings = miner_settings(devnet, tmp_path)
    app = create_app(settings, MinerKeys(provider=role_account("provider"), node=node), SPECS)
    with serve_in_thread(app, port=settings.port) as url:
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
    network: Network, miner: str, node: LocalAccount, tmp_path: Path, orchestrator: tuple[OrchestratorPeer, str]
) -> None:
    peer, peer_url = orchestrator
    audience = node.address.lower()
    body = await invite_body(network, node.address, peer_url)
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
        other = await invite_body(network, Account.create().address, peer_url)
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
        again = await owner.post("/invite", json=await invite_body(network, node.address, peer_url))
        assert again.json()["result"] == "already_in_pool"

    state_file = tmp_path / "state" / "miner-state.json"
    assert state_file.stat().st_mode & 0o777 == 0o600
    assert peer_url in state_file.read_text()
    await peer.next_beat(0, lambda beat: beat.address == audience and beat.task_id is None)


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


def busybox(task_id: str, script: str) -> TaskSpec:
    return TaskSpec(task_id=task_id, image=IMAGE, command=["sh", "-c", script], max_restarts=0)


def running(task_id: str) -> Callable[[Heartbeat], bool]:
    def match(beat: Heartbeat) -> bool:
        details = beat.task_details
        return (
            beat.task_id == task_id and beat.task_state == TaskState.RUNNING and bool(details and details.container_id)
        )

    return match


async def test_heartbeats_apply_assignments_and_serve_logs(
    network: Network, miner: str, node: LocalAccount, orchestrator: tuple[OrchestratorPeer, str], docker_client: Any
) -> None:
    peer, peer_url = orchestrator
    audience = node.address.lower()
    async with client(miner, manager, audience) as owner:
        assert (await owner.get("/task/logs")).json()["error"]["code"] == "no_task"
        assert (await owner.post("/invite", json=await invite_body(network, node.address, peer_url))).is_success

        peer.assignment = busybox("hb-1", "echo hello from the task; sleep 300")
        first = await peer.next_beat(0, running("hb-1"))
        assert first.task_details is not None
        logs = await owner.get("/task/logs", params={"tail": 10})
        assert logs.status_code == 200
        assert "hello from the task" in logs.json()["logs"]
        async with client(miner, Account.create(), audience) as stranger:
            assert (await stranger.get("/task/logs")).status_code == 403

        restarted = await owner.post("/task/restart")
        assert restarted.status_code == 200, restarted.text
        assert restarted.json()["details"]["started_at"] != first.task_details.started_at

        peer.assignment = busybox("hb-2", "sleep 300")
        second = await peer.next_beat(time.time(), running("hb-2"))
        assert second.task_details is not None
        assert second.task_details.container_id != first.task_details.container_id
        label = f"{LABEL_NODE}={audience}"
        names = [c.name for c in docker_client.containers.list(all=True, filters={"label": [label]})]
        assert names == [peer.assignment.container_name()]

        peer.assignment = None
        await peer.next_beat(time.time(), lambda beat: beat.task_id is None)
        await peer.next_beat(time.time(), lambda beat: beat.task_id is None)  # the one after the removal
        assert docker_client.containers.list(all=True, filters={"label": [label]}) == []


@pytest.fixture
def discovery_url(devnet: DevnetState) -> Iterator[str]:
    settings = DiscoverySettings(
        redis_url=devnet.redis_url,
        rpc_url=devnet.rpc_url,
        deployment_file=Path(devnet.deployment_file),
        key_prefix="mk" + secrets.token_hex(4),
    )
    with serve_in_thread(create_discovery(settings), port=free_port()) as url:
        yield url


async def test_kill_9_and_restart_keeps_the_task_container(
    devnet: DevnetState,
    network: Network,
    node: LocalAccount,
    tmp_path: Path,
    orchestrator: tuple[OrchestratorPeer, str],
    discovery_url: str,
    docker_client: Any,
) -> None:
    peer, peer_url = orchestrator
    settings = miner_settings(devnet, tmp_path)
    env = {
        **os.environ,
        "PRIMENET_PROVIDER_KEY": role_account("provider").key.hex(),
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
        async with client(url, manager, node.address.lower()) as owner:
            assert (await owner.post("/invite", json=await invite_body(network, node.address, peer_url))).is_success
        peer.assignment = busybox("k9", "sleep 300")
        before = await peer.next_beat(0, running("k9"))
        assert before.task_details is not None
        process.send_signal(signal.SIGKILL)
        await process.wait()
        killed_at = time.time()
        container = docker_client.containers.get(peer.assignment.container_name())
        assert container.id == before.task_details.container_id
        assert container.status == "running"

        process = await start()
        after = await peer.next_beat(killed_at, lambda beat: beat.task_id == "k9")
        assert after.task_state == TaskState.RUNNING  # the first heartbeat after the restart already reports it
        assert after.task_details is not None
        assert after.task_details.container_id == container.id
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
    orchestrator: tuple[OrchestratorPeer, str],
    docker_client: Any,
    tmp_path: Path,
) -> None:
    """Ejected on chain while it runs (the pool owner's call, not the miner's): the miner's membership check sees it,
    removes the task container and stops beating, so a node outside the pool never works for it."""
    peer, peer_url = orchestrator
    settings = miner_settings(devnet, tmp_path, discovery_check_interval_s=0.5)
    app = create_app(settings, MinerKeys(provider=role_account("provider"), node=node), SPECS)
    with serve_in_thread(app, port=settings.port) as url:
        async with client(url, manager, node.address.lower()) as owner:
            assert (await owner.post("/invite", json=await invite_body(network, node.address, peer_url))).is_success
        peer.assignment = busybox("ej-1", "sleep 300")
        await peer.next_beat(0, running("ej-1"))

        await network.eject_node(network.transactor(manager), 0, node.address)
        label = {"label": [f"{LABEL_NODE}={node.address.lower()}"]}
        deadline = time.monotonic() + 30
        while docker_client.containers.list(all=True, filters=label):
            assert time.monotonic() < deadline, "the task container outlived the ejection"
            await asyncio.sleep(0.2)
        state = json.loads((tmp_path / "state" / "miner-state.json").read_text())
        assert (state["pool_id"], state["orchestrator_url"], state["assignment"]) == (None, None, None)
        quiet_from = len(peer.beats)
        await asyncio.sleep(5 * settings.heartbeat_interval_s)
        assert len(peer.beats) <= quiet_from + 1  # at most one beat that was already on its way
