"""What dispatch.py, detection.py and recovery.py share (not a benchmark itself): the orchestrator as its own process
on a private Anvil and Redis, and simulated nodes that beat the way the miner does.

`coordinator(...)` starts Anvil (the devnet's contracts, pool 0 managed by the orchestrator key), Redis (AOF,
`appendfsync always`, as the devnet runs it) and `primenet orchestrator` with the given settings; the discovery URL
points nowhere, so the monitor only retries and the nodes are made known through the orchestrator's own store
(`heartbeat.known_healthy`), as its monitor and a first beat would leave them.

`Fleet` runs simulated nodes: each sends a signed `POST /heartbeat` every interval (its first at a random phase),
and after a failed one waits `interval * 2**failures` (at most the miner's `heartbeat_max_backoff_s`), as
`primenet.miner.heartbeat` does.
An assignment in a reply is "started" at once and reported running (with its task id) in the node's next beat,
which comes at the next interval unless the orchestrator nudges the node (`POST /heartbeat/now` on the node's own
loopback port, served here when `nudges` is on). Replies are not verified (that cost is the miner's, not the
orchestrator's).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import httpx
from aiohttp import web
from eth_account import Account
from eth_account.signers.local import LocalAccount

from heartbeat import CHAIN_ID, TOKEN, known_healthy, orchestrator_env, start_orchestrator
from primenet.chain.contracts import Network
from primenet.chain.deployment import Deployment
from primenet.chain.eip712 import PoolInvite
from primenet.core.auth import AUTH_HEADER, orchestrator_audience, sign_request
from primenet.core.models import Heartbeat, TaskState
from primenet.devnet.accounts import role_account
from primenet.devnet.chain_setup import prepare_chain
from primenet.devnet.local import Devnet, DevnetSettings
from primenet.devnet.processes import ManagedProcess, free_port, spawn, stop
from primenet.miner.settings import MinerSettings

TOKEN_UNIT = 10**18
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
JSON = {"content-type": "application/json"}
MINER_MAX_BACKOFF_S = float(MinerSettings.model_fields["heartbeat_max_backoff_s"].default)
MINER_TIMEOUT_S = float(MinerSettings.model_fields["heartbeat_timeout_s"].default)


@dataclass
class Coordinator:
    """Anvil, Redis and the orchestrator process of one benchmark run; `url` is the orchestrator's."""

    state: Path
    devnet: Devnet
    anvil: ManagedProcess
    redis: ManagedProcess
    audience: str
    url: str
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.state / "orchestrator.log"

    def start_orchestrator(self) -> None:
        """Start the orchestrator and wait until it serves. Its store is new by construction while the pool may
        already have nodes on chain (the bench joins them first), which the store guard holds on: the operator's
        confirmation ends the hold, as after a first deploy onto a pool with nodes (a restart keeps the marker)."""
        self.process = start_orchestrator(self.env, self.url, self.log)
        httpx.post(f"{self.url}/store/confirm", headers=ADMIN, timeout=10).raise_for_status()

    def launch_orchestrator(self) -> None:
        """Start the process without waiting for it to serve (a supervisor restarting it)."""
        self.process = spawn([str(Path(sys.executable).with_name("primenet")), "orchestrator"], self.log, env=self.env)

    def kill_orchestrator(self) -> None:
        """SIGKILL, as a crash: no shutdown code runs."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
            self.process = None

    def stop_orchestrator(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


@contextlib.contextmanager
def coordinator(settings: dict[str, str]) -> Iterator[Coordinator]:
    """Everything started, with `settings` (`PRIMENET_*` names) over the bench's own; all stopped on the way out."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # `timeout`: leave through the `finally` below
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        devnet = Devnet(DevnetSettings(state_dir=state, anvil_port=free_port(), redis_port=free_port()))
        anvil = devnet.start_anvil()
        redis: ManagedProcess | None = None
        run: Coordinator | None = None
        try:
            redis = devnet.start_redis()
            deployment, _ = asyncio.run(prepare_chain(anvil.url, None, lambda _: None))
            deployment.save(state / "deployment.json")
            port = free_port()
            env = {
                **orchestrator_env(redis.url, anvil.url, state / "deployment.json", port),
                "PRIMENET_AUTH__IP_RATE_LIMIT": "0",  # every simulated node sends from 127.0.0.1
                **settings,
            }
            audience = orchestrator_audience(deployment.address("ComputePool"), 0)
            run = Coordinator(state, devnet, anvil, redis, audience, f"http://127.0.0.1:{port}", env)
            yield run
        finally:
            if run is not None:
                run.stop_orchestrator()
                redis = run.redis  # a restarted one
            stop(anvil)
            if redis is not None:
                stop(redis)


@dataclass
class SimNode:
    account: LocalAccount
    port: int  # the node's miner API port (nudges); a closed one when the fleet serves none
    alive: bool = True  # False: it stops beating (a failed miner)
    task_id: str | None = None
    assigned_at: dict[str, float] = field(default_factory=dict)  # task id -> when a reply first carried it
    beats_ok: int = 0
    beats_failed: int = 0
    first_ok: float | None = None
    last_ok: float | None = None  # when its last answered beat was answered
    max_silence_s: float = 0.0  # longest time between two answered beats
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def address(self) -> str:
        return self.account.address


def new_nodes(n: int, *, nudge_ports: bool = False) -> list[SimNode]:
    closed = free_port()
    return [SimNode(Account.create(), free_port() if nudge_ports else closed) for _ in range(n)]


async def make_known(coordinator: Coordinator, nodes: list[SimNode]) -> None:
    """Stored and Healthy, as the monitor and a first beat leave a node; they must beat from now on."""
    by_port: dict[int, list[LocalAccount]] = {}
    for node in nodes:
        by_port.setdefault(node.port, []).append(node.account)
    for port, accounts in by_port.items():
        await known_healthy(coordinator.redis.url, accounts, closed_port=port)


async def join_on_chain(rpc_url: str, deployment_file: Path, nodes: list[LocalAccount]) -> None:
    """Each node added under the devnet provider, validated and joined to pool 0 (as registration leaves it)."""
    async with Network.connect(rpc_url, Deployment.load(deployment_file)) as network:
        provider = role_account("provider")
        await network.register_provider(network.transactor(provider), (len(nodes) + 10) * TOKEN_UNIT)
        await network.whitelist_provider(network.transactor(role_account("federator")), provider.address)
        pool = await network.pool(0)
        for node in nodes:
            await network.add_node(network.transactor(provider), node, compute_units=1)
            await network.validate_node(network.transactor(role_account("validator")), provider.address, node.address)
            block = await network.w3.eth.get_block("latest")
            invite = PoolInvite(
                domain_id=pool.domain_id,
                pool_id=0,
                node=node.address,
                nonce=random.getrandbits(128),
                expiry=int(block["timestamp"]) + 3600,
            )
            signature = network.sign_invite(role_account("orchestrator"), invite)
            await network.join_pool(network.transactor(provider), invite, signature)


class Fleet:
    """Simulated nodes beating `url` (the orchestrator, or a proxy in front of it) until `stop()`."""

    def __init__(
        self,
        nodes: list[SimNode],
        url: str,
        audience: str,
        interval_s: float,
        *,
        nudges: bool = False,
        max_backoff_s: float = MINER_MAX_BACKOFF_S,
    ) -> None:
        self.nodes = nodes
        self.max_backoff_s = max_backoff_s
        self.url = url
        self.audience = audience
        self.interval_s = interval_s
        self.nudges = nudges
        self.errors: dict[str, int] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        timeout = aiohttp.ClientTimeout(total=MINER_TIMEOUT_S)
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=512), timeout=timeout)
        if self.nudges:
            await self._serve_nudges()
        self._tasks = [asyncio.create_task(self._loop(node)) for node in self.nodes]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _serve_nudges(self) -> None:
        by_port = {node.port: node for node in self.nodes}

        async def now(request: web.Request) -> web.Response:
            sockname = request.transport.get_extra_info("sockname") if request.transport else None
            node = by_port.get(sockname[1]) if sockname else None
            if node is not None:
                node.wake.set()
            return web.json_response({"ok": node is not None})

        app = web.Application()
        app.router.add_post("/heartbeat/now", now)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        for port in by_port:
            await web.TCPSite(self._runner, "127.0.0.1", port).start()

    async def _loop(self, node: SimNode) -> None:
        await asyncio.sleep(random.uniform(0, self.interval_s))
        failures = 0
        while node.alive:
            delay = self.interval_s
            if await self.beat(node):
                failures = 0
            else:
                failures += 1
                delay = min(self.interval_s * 2**failures, self.max_backoff_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(node.wake.wait(), delay)
            node.wake.clear()

    async def beat(self, node: SimNode) -> bool:
        """One signed heartbeat; whether it was answered 200."""
        assert self._session is not None
        now = time.time()
        body = Heartbeat(
            address=node.address,
            task_id=node.task_id,
            task_state=TaskState.RUNNING if node.task_id else None,
            version="bench",
            timestamp=now,
        )
        content = body.model_dump_json().encode()
        auth = sign_request(
            node.account, method="POST", path="/heartbeat", body=content, audience=self.audience, chain_id=CHAIN_ID
        )
        try:
            async with self._session.post(
                f"{self.url}/heartbeat", data=content, headers={**JSON, AUTH_HEADER: auth}
            ) as response:
                reply = await response.read()
                if response.status != 200:
                    self._error(f"HTTP {response.status}")
                    node.beats_failed += 1
                    return False
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._error(type(exc).__name__)
            node.beats_failed += 1
            return False
        answered = time.time()
        if node.last_ok is not None:
            node.max_silence_s = max(node.max_silence_s, answered - node.last_ok)
        node.first_ok = node.first_ok or answered
        node.last_ok = answered
        node.beats_ok += 1
        assignment = json.loads(reply).get("assignment")
        task_id = assignment["task_id"] if assignment else None
        if task_id is not None and task_id not in node.assigned_at:
            node.assigned_at[task_id] = answered
        node.task_id = task_id  # "started" at once: reported running from the next beat on
        return True

    def _error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")
