"""`primenet miner run` is reachable before anyone can learn of it (issue 16).

Whoever reads a node from discovery calls its API at once: the validator to challenge it, the orchestrator to invite
it. A miner that uploaded its record before its API listened had its first challenge fail `unreachable` (and the
validator back off). Here the real discovery runs behind a probe that, at the moment a node's record arrives and
before discovery stores it, asks the address in the record for `GET /health`, as the first reader would. The miner
is the real `primenet miner run` process against the session devnet's chain.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from primenet.chain.contracts import Network
from primenet.devnet.local import DevnetState
from primenet.devnet.processes import free_port
from primenet.devnet.serve import serve_in_thread
from primenet.discovery.app import create_app as create_discovery
from primenet.discovery.settings import DiscoverySettings
from waiting import until, wait_for


class ReachabilityProbe:
    """In front of the real discovery: each `PUT /api/nodes` first asks the uploaded ip:port for `/health` and
    records what came back (status and `status` field, or the transport error's name), then goes on unchanged."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.seen: list[tuple[int | None, str]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "PUT" or scope["path"] != "/api/nodes":
            await self.app(scope, receive, send)
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        record = json.loads(body)
        try:
            async with httpx.AsyncClient(timeout=5.0) as http:
                reply = await http.get(f"http://{record['ip']}:{record['port']}/health")
            self.seen.append((reply.status_code, str(reply.json().get("status"))))
        except httpx.TransportError as exc:
            self.seen.append((None, type(exc).__name__))
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


@pytest.fixture
def probed_discovery(devnet: DevnetState) -> Iterator[tuple[str, ReachabilityProbe]]:
    settings = DiscoverySettings(
        redis_url=devnet.redis_url,
        rpc_url=devnet.rpc_url,
        deployment_file=Path(devnet.deployment_file),
        sync_interval_s=0.5,
        role_cache_s=0.5,
        key_prefix="mready",
    )
    probe = ReachabilityProbe(create_discovery(settings))
    with serve_in_thread(probe, port=free_port()) as url:
        yield url, probe


async def test_the_miner_serves_its_api_before_it_uploads_its_record(
    devnet: DevnetState,
    network: Network,
    provider: LocalAccount,
    probed_discovery: tuple[str, ReachabilityProbe],
    tmp_path: Path,
) -> None:
    discovery_url, probe = probed_discovery
    node: LocalAccount = Account.create()
    port = free_port()
    env = {
        **os.environ,
        "PRIMENET_PROVIDER_KEY": provider.key.hex(),
        "PRIMENET_NODE_KEY": node.key.hex(),
        "PRIMENET_HOST": "127.0.0.1",
        "PRIMENET_PORT": str(port),
        "PRIMENET_RPC_URL": devnet.rpc_url,
        "PRIMENET_DEPLOYMENT_FILE": devnet.deployment_file,
        "PRIMENET_DISCOVERY_URL": discovery_url,
        "PRIMENET_STORAGE_PATH": str(tmp_path / "storage"),
        "PRIMENET_STATE_DIR": str(tmp_path / "state"),
        "PRIMENET_VISIBLE_DEVICES": "none",
        "PRIMENET_CHALLENGE_BACKEND": "numpy",
        "DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock",  # no task here: leave this host's dockerd alone
    }
    log_path = tmp_path / "miner.log"
    with log_path.open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).with_name("primenet")), "miner", "run", env=env, stdout=log, stderr=log
        )
    try:

        async def uploaded() -> tuple[int | None, str] | None:
            assert process.returncode is None, log_path.read_text()[-3000:]
            return probe.seen[0] if probe.seen else None

        first = await until(uploaded, "the miner's upload to discovery", timeout_s=90.0, every_s=0.1)
        # At the moment discovery got the record, the API already answered: serving, not yet listed.
        assert first == (503, "publishing")
        info = await network.node(node.address)
        assert info is not None  # registered on chain before anything was uploaded

        async def healthy() -> bool:
            async with httpx.AsyncClient(timeout=2.0) as http:
                reply = await http.get(f"http://127.0.0.1:{port}/health")
            return reply.status_code == 200 and reply.json()["status"] == "ok"

        await wait_for(healthy, "the miner's /health to say ok once its record is in discovery")
        assert len(probe.seen) == 1  # one upload, accepted
        assert process.returncode is None
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()
