"""Work orders cannot be forged on the path: a tampering reverse proxy between a real miner and a real orchestrator.

Real devnet chain, Redis, discovery, orchestrator, miner and dockerd; the orchestrator's public URL (where its
invite sends the miner's heartbeats) is a loopback proxy that forwards every beat and then alters the reply:
(a) strips the reply signature, (b) swaps the assignment's image and command, (c) replays an earlier reply (one
without the task, which would stop it), (d) swaps the assignment and re-signs it, for this very request, with a
foreign key. The miner refuses each (its /health counter rises), keeps its task container untouched, and obeys
the untampered path again afterwards (a deleted task is removed through the proxy).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web
from eth_account import Account
from eth_account.signers.local import LocalAccount

from binding import bind_listed_specs
from primenet.core.auth import AUTH_HEADER, RequestSigner
from primenet.core.models import ComputeSpecs, NodeRecord
from primenet.core.replies import REPLY_AUTH_HEADER, sign_reply
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
from waiting import until, wait_for

IMAGE = "local/primenet-busybox:1"
EVIL_IMAGE = "local/primenet-busybox:latest"  # a local image (with another command): an obeyed swap would run
SPECS = ComputeSpecs(cpu_model="test cpu", cpu_cores=2, ram_mib=4096, storage_path="/tmp", storage_free_gb=10.0)
TOKEN = "work-orders-admin-token-0123456789"
ADMIN = {"authorization": f"Bearer {TOKEN}"}
manager = role_account("orchestrator")
provider = role_account("provider")
FOREIGN = Account.create()


def swapped(content: bytes) -> bytes:
    """The reply with another image and command: what an attacker on the path would have the provider run."""
    reply = json.loads(content)
    if reply.get("assignment"):
        reply["assignment"]["image"] = EVIL_IMAGE
        reply["assignment"]["command"] = ["sh", "-c", "echo tampered; sleep 300"]
    return json.dumps(reply).encode()


class TamperingProxy:
    """A reverse proxy on loopback to the orchestrator; `mode` says what it does to heartbeat replies."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.mode = "pass"
        self.idle_reply: tuple[bytes, dict[str, str]] | None = None  # a genuine reply with no assignment
        self.http = httpx.AsyncClient(timeout=30)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        forward = {k: v for k, v in request.headers.items() if k.lower() in ("content-type", AUTH_HEADER.lower())}
        answer = await self.http.request(request.method, self.upstream + request.path_qs, content=body, headers=forward)
        content = answer.content
        headers = {k: answer.headers[k] for k in ("content-type", REPLY_AUTH_HEADER) if k in answer.headers}
        if request.path == "/heartbeat" and answer.status_code == 200:
            content, headers = self.tamper(content, headers, json.loads(request.headers[AUTH_HEADER])["nonce"])
        return web.Response(body=content, status=answer.status_code, headers=headers)

    def tamper(self, content: bytes, headers: dict[str, str], nonce: str) -> tuple[bytes, dict[str, str]]:
        if self.mode == "pass":
            if json.loads(content)["assignment"] is None:
                self.idle_reply = (content, dict(headers))
            return content, headers
        if self.mode == "strip":
            return content, {k: v for k, v in headers.items() if k != REPLY_AUTH_HEADER}
        if self.mode == "swap":
            return swapped(content), headers
        if self.mode == "replay":
            assert self.idle_reply is not None
            return self.idle_reply
        assert self.mode == "foreign"
        claims = json.loads(headers[REPLY_AUTH_HEADER])
        evil = swapped(content)
        header = sign_reply(
            FOREIGN,
            body=evil,
            node=claims["node"],
            request_nonce=nonce,
            audience=claims["audience"],
            chain_id=claims["chain_id"],
        )
        return evil, {**headers, REPLY_AUTH_HEADER: header}


async def start_proxy(proxy: TamperingProxy, port: int) -> Callable[[], Any]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", proxy.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner.cleanup


def settings_for(devnet: DevnetState, tmp_path: Path, prefix: str, proxy_port: int, miner_port: int) -> Any:
    common: dict[str, Any] = {
        "redis_url": devnet.redis_url,
        "rpc_url": devnet.rpc_url,
        "deployment_file": Path(devnet.deployment_file),
    }
    discovery = DiscoverySettings(**common, sync_interval_s=0.2, role_cache_s=0.5, key_prefix="d" + prefix)
    orchestrator = {
        **common,
        "admin_token": TOKEN,
        "public_url": f"http://127.0.0.1:{proxy_port}",  # the invite sends the miner's beats through the proxy
        "heartbeat_interval_s": 0.3,
        "unhealthy_after_s": 10.0,
        "dead_after_s": 20.0,
        "invite_interval_s": 0.3,
        "invite_retry_base_s": 0.5,
        "invite_retry_max_s": 2.0,
        "feed_timeout_s": 1.0,
        "key_prefix": prefix,
    }
    miner = MinerSettings(
        **common,
        host="127.0.0.1",
        port=miner_port,
        pool_id=0,
        storage_path=tmp_path / "storage",
        state_dir=tmp_path / "state",
        heartbeat_interval_s=0.3,
        heartbeat_max_backoff_s=1.0,
        discovery_check_interval_s=3600,
        role_cache_s=1,
        challenge_backend="numpy",
    )
    return discovery, orchestrator, miner


async def test_tampered_work_orders_are_refused_and_the_task_is_kept(
    devnet: DevnetState, new_node: Any, tmp_path: Path, docker_client: Any
) -> None:
    prefix = "w" + secrets.token_hex(4)
    node: LocalAccount = await new_node(validated=True)
    address = node.address.lower()
    orch_port, proxy_port, miner_port = free_port(), free_port(), free_port()
    dsettings, ofields, msettings = settings_for(devnet, tmp_path, prefix, proxy_port, miner_port)
    proxy = TamperingProxy(f"http://127.0.0.1:{orch_port}")
    stop_proxy = await start_proxy(proxy, proxy_port)
    label = f"{LABEL_NODE}={address}"
    clients: list[httpx.AsyncClient] = []

    def containers() -> list[Any]:
        return list(docker_client.containers.list(all=True, filters={"label": [label]}, ignore_removed=True))

    try:
        with ExitStack() as stack:
            stack.callback(lambda: [c.remove(force=True) for c in containers()])
            discovery_url = stack.enter_context(serve_in_thread(create_discovery(dsettings), port=free_port()))
            osettings = OrchestratorSettings(**ofields, discovery_url=discovery_url)
            orch_url = stack.enter_context(serve_in_thread(create_orchestrator(osettings, manager), port=orch_port))
            miner_url = stack.enter_context(
                serve_in_thread(
                    create_miner(msettings, MinerKeys(provider=provider, node=node), SPECS), port=miner_port
                )
            )
            # Async clients: the proxy runs on this test's event loop, which a blocking client would stall.
            admin = httpx.AsyncClient(base_url=orch_url, headers=ADMIN, timeout=60)
            miner_api = httpx.AsyncClient(base_url=miner_url, timeout=30)
            clients.extend((admin, miner_api))

            async def miner_health() -> dict[str, Any]:
                return dict((await miner_api.get("/health")).json())

            record = NodeRecord(
                node=node.address, provider=provider.address, ip="127.0.0.1", port=miner_port, pool_id=0, specs=SPECS
            )
            async with httpx.AsyncClient(
                base_url=discovery_url, auth=RequestSigner(node, audience="discovery", chain_id=31337), timeout=30
            ) as http:
                assert (await http.put("/api/nodes", json=record.model_dump(mode="json"))).status_code == 200
            await bind_listed_specs(discovery_url, node.address)  # as the validator does once the node passed

            async def healthy() -> bool:
                response = await admin.get(f"/nodes/{address}")
                return response.status_code == 200 and response.json()["status"] == "healthy"

            async def answered() -> bool:  # a genuine reply without a task went through: the replay's material
                return proxy.idle_reply is not None and (await miner_health())["last_heartbeat_reply_at"]

            await wait_for(healthy, "the node to be Healthy through the proxy")
            await wait_for(answered, "a reply with no assignment to pass the proxy")
            created = await admin.post(
                "/tasks",
                json={"name": "kept", "image": IMAGE, "command": ["sh", "-c", "sleep 300"], "entrypoint": None,
                      "env": {}, "gpus": 0, "nodes": 1, "requirements": "cpu:cores=1"},
            )  # fmt: skip
            assert created.status_code == 201, created.text
            task_id = created.json()["id"]

            async def running() -> str | None:
                found = [c for c in containers() if c.status == "running"]
                return found[0].id if len(found) == 1 else None

            container_id = await until(running, "the task container to run", 60)
            command = ["sh", "-c", "sleep 300"]
            assert docker_client.containers.get(container_id).attrs["Config"]["Cmd"] == command

            for mode in ("strip", "swap", "replay", "foreign"):
                before = (await miner_health())["heartbeat_replies_refused"]
                proxy.mode = mode

                async def refused_twice(before: int = before) -> bool:
                    return bool((await miner_health())["heartbeat_replies_refused"] >= before + 2)

                await wait_for(refused_twice, f"the miner to refuse {mode} replies")
                # Nothing changed: the same container, still running, still the task's image; no other container.
                now = containers()
                assert [c.id for c in now] == [container_id], f"{mode}: containers are now {now}"
                assert now[0].status == "running", mode
                assert docker_client.containers.get(container_id).attrs["Config"]["Cmd"] == command, mode

            metrics = (await miner_api.get("/metrics/")).text
            assert 'primenet_miner_heartbeats_total{outcome="refused"}' in metrics

            # The untampered path works again: the task's withdrawal reaches the miner through the proxy.
            proxy.mode = "pass"
            refused = (await miner_health())["heartbeat_replies_refused"]
            assert (await admin.delete(f"/tasks/{task_id}")).status_code == 200

            async def removed() -> bool:
                return not containers()

            await wait_for(removed, "the withdrawn task's container to be removed")
            assert (await miner_health())["heartbeat_replies_refused"] == refused
    finally:
        for client in clients:
            await client.aclose()
        await stop_proxy()
        await proxy.http.aclose()
