"""The orchestrator under heartbeat load: authenticated heartbeats against a trivial route, 10,000 nodes beating
every 10 s, and how soon a new task runs in a container on a real miner.

Phases 1 and 2 are real and local: a private Anvil with the contracts (pool 0 managed by the orchestrator key), a
private Redis (AOF on), and `primenet orchestrator` running as its own process with all its loops (health,
scheduler, inviter; the discovery URL points nowhere, so the monitor only retries). The N simulated nodes are
made known the way the orchestrator's monitor and first heartbeat leave them (stored through the orchestrator's
own store, then Healthy), and one task for "all" nodes is placed before measuring, so every heartbeat reply
carries an assignment and the scheduler reads every node on each pass, as in a busy pool. Their addresses are
127.0.0.1 with a closed port (the orchestrator's calls to their miners are refused at once; never other hosts).
  throughput   signed POST /heartbeat from distinct nodes, IN_FLIGHT at once, against GET /health (which pings
               Redis) on the same server at the same concurrency; target ratio >= 0.5
  steady load  every node beats every INTERVAL s, spread evenly (N / INTERVAL requests/s offered, open loop: each
               request leaves at its scheduled time whatever the others do); latency from the scheduled time to
               the answer, p50/p99, and errors; target p99 < 100 ms and no errors
Requests are signed ahead of time (a signature takes ~0.3 ms, more than the server's share at this rate); each
carries the time it is sent as its timestamp, so the server's default 60 s window applies. The per-signer rate
limit is raised (the throughput phase sends each node several beats at once) and the health thresholds
lengthened (so the nodes that beat less often in the throughput phase stay Healthy); neither changes the cost of
a heartbeat.
  dispatch     the whole devnet as processes (`primenet devnet up` on free ports: Anvil, Redis, discovery,
               validator, orchestrator, a miner with Docker), heartbeats every INTERVAL s; POST /tasks -> the
               task's container running on the miner, and DELETE -> the container gone, as seen by dockerd;
               p50/p99 over DISPATCHES tasks; target p50 < 2 s
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import docker
import httpx
from eth_account import Account
from eth_account.signers.local import LocalAccount
from rich.console import Console
from rich.table import Table

from primenet.core.auth import AUTH_HEADER, orchestrator_audience, sign_request
from primenet.core.models import ComputeSpecs, Heartbeat, NodeRecord, specs_hash
from primenet.core.redisdb import connect as connect_redis
from primenet.devnet.accounts import role_account
from primenet.devnet.chain_setup import prepare_chain
from primenet.devnet.local import Devnet, DevnetSettings
from primenet.devnet.processes import answers_health, free_port, spawn, stop, wait_ready
from primenet.miner.runner import LABEL_TASK
from primenet.orchestrator.models import NodeStatus
from primenet.orchestrator.store import OrchestratorStore
from results import record

CHAIN_ID = 31337
TOKEN = "bench-admin-" + secrets.token_hex(16)
TASK_IMAGE = "local/primenet-busybox:1"  # built locally by scripts/build-task-image.sh
REPO = Path(__file__).resolve().parents[1]
TARGET_RATIO = 0.5
TARGET_P99_MS = 100.0
TARGET_DISPATCH_MS = 2000.0
JSON = {"content-type": "application/json"}


@dataclass
class Signed:
    body: bytes
    header: str
    at: float = 0.0  # when it is due to leave (steady load); 0: as soon as possible


@dataclass
class Figures:
    rows: list[tuple[str, str, str, bool | None]] = field(default_factory=list)

    def add(self, what: str, value: str, target: str = "", met: bool | None = None) -> None:
        self.rows.append((what, value, target, met))


def heartbeat(node: LocalAccount, at: float, audience: str) -> Signed:
    """A heartbeat signed for second `at`: both its body's clock and its auth timestamp say when it leaves."""
    body = Heartbeat(address=node.address, version="bench", timestamp=at).model_dump_json().encode()
    header = sign_request(
        node, method="POST", path="/heartbeat", body=body, audience=audience, chain_id=CHAIN_ID, timestamp=int(at)
    )
    return Signed(body, header, at)


def ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


# --- setup ----------------------------------------------------------------------------------------------


async def known_healthy(redis_url: str, nodes: list[LocalAccount], closed_port: int) -> None:
    """Each node as the monitor stores a listed one, then Healthy as its first heartbeat leaves it."""
    provider = role_account("provider").address
    specs = ComputeSpecs(cpu_model="bench", cpu_cores=16, ram_mib=64_000)
    redis = connect_redis(redis_url)
    try:
        store = OrchestratorStore(redis)
        for start in range(0, len(nodes), 64):
            now = time.time()

            async def add(node: LocalAccount, now: float = now) -> None:
                record = NodeRecord(
                    node=node.address, provider=provider, ip="127.0.0.1", port=closed_port, pool_id=0, specs=specs
                )
                # Bound as a validator binds them: the scheduler gives work only to nodes with validated specs.
                await store.upsert_listed(record, listed_at=now, now=now, bound_specs_hash=specs_hash(specs))
                await store.transition(node.address, NodeStatus.HEALTHY, now=now, fields={"last_heartbeat": repr(now)})

            await asyncio.gather(*(add(node) for node in nodes[start : start + 64]))
    finally:
        await redis.aclose()


async def place_everywhere(url: str, n: int) -> float:
    """One task for all nodes; returns how long until the scheduler had assigned every node."""
    admin = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=url, timeout=60, headers=admin) as http:
        start = time.perf_counter()
        body = {"name": "everyone", "image": TASK_IMAGE, "command": ["sleep", "3600"], "nodes": "all"}
        created = await http.post("/tasks", json=body)
        if created.status_code != 201:
            raise RuntimeError(f"POST /tasks refused: {created.status_code} {created.text}")
        while (assigned := len((await http.get(f"/tasks/{created.json()['id']}")).json()["assignments"])) < n:
            if time.perf_counter() - start > 300:
                raise RuntimeError(f"the scheduler assigned {assigned} of {n} nodes within 300 s")
            await asyncio.sleep(0.5)
        return time.perf_counter() - start


async def heartbeats_with_appendfsync(
    redis_url: str, policy: str, url: str, beats: list[Signed], in_flight: int
) -> float:
    """Signed heartbeats per second with Redis's `appendfsync` set to `policy` for the run (then restored)."""
    redis = connect_redis(redis_url)
    try:
        before = str((await redis.config_get("appendfsync"))["appendfsync"])
        await redis.config_set("appendfsync", policy)
        try:
            rate, _ = await closed_loop(url, beats, len(beats), in_flight)
        finally:
            await redis.config_set("appendfsync", before)
    finally:
        await redis.aclose()
    return rate


def chain_watch_passed(url: str) -> Callable[[], bool]:
    """A readiness check: the orchestrator's chain watch has finished a pass (its first one re-reads every known
    node's pool membership; `/health` gives the loop's `last_run_at` once a pass succeeded)."""

    def check() -> bool:
        try:
            loops = httpx.get(f"{url}/health", timeout=1.0).json().get("loops", {})
        except (httpx.HTTPError, ValueError):
            return False
        return isinstance(loops, dict) and (loops.get("chainwatch") or {}).get("last_run_at") is not None

    return check


def orchestrator_env(redis_url: str, rpc_url: str, deployment_file: Path, port: int) -> dict[str, str]:
    """The bench's orchestrator on `port` (pool 0, the devnet's manager key, an admin token, quiet logs); its
    discovery URL points nowhere, so the monitor only retries."""
    return {
        "PRIMENET_REDIS_URL": redis_url,
        "PRIMENET_RPC_URL": rpc_url,
        "PRIMENET_DEPLOYMENT_FILE": str(deployment_file),
        "PRIMENET_PORT": str(port),
        "PRIMENET_LOG_LEVEL": "warning",
        "PRIMENET_ADMIN_TOKEN": TOKEN,
        "PRIMENET_MANAGER_KEY": "0x" + bytes(role_account("orchestrator").key).hex(),
        "PRIMENET_DISCOVERY_URL": f"http://127.0.0.1:{free_port()}",
    }


def start_orchestrator(env: dict[str, str], url: str, log: Path) -> subprocess.Popen[bytes]:
    """The orchestrator, once its chain watch's start-up resync is over: `/health` answers before that pass ends,
    and nodes stored meanwhile (not on chain) would be Ejected under the measurement."""
    process = spawn([str(Path(sys.executable).with_name("primenet")), "orchestrator"], log, env=env)
    wait_ready(process, answers_health(url), name="orchestrator", log_path=log, timeout_s=60)
    wait_ready(process, chain_watch_passed(url), name="orchestrator's chain watch", log_path=log, timeout_s=60)
    return process


async def still_healthy(redis_url: str, n: int, phase: str) -> None:
    """Raise unless all `n` nodes are still Healthy: a node moved (by the chain watch, which sees none of them on
    chain, or the health pass) would make its beats take the slow path and the figures not a busy pool's."""
    redis = connect_redis(redis_url)
    try:
        counts = await OrchestratorStore(redis).counts()
    finally:
        await redis.aclose()
    if counts.get(NodeStatus.HEALTHY.value) != n:
        moved = {status: count for status, count in counts.items() if count and status != NodeStatus.HEALTHY.value}
        healthy = counts.get(NodeStatus.HEALTHY.value, 0)
        raise RuntimeError(f"after the {phase}: {healthy} of {n} nodes Healthy ({moved}); nothing recorded for it")


# --- measurements ---------------------------------------------------------------------------------------


async def closed_loop(url: str, requests: list[Signed] | None, count: int, in_flight: int) -> tuple[float, int]:
    """Requests per second with `in_flight` at once: signed heartbeats, or (`requests` None) GET /health."""
    errors = 0
    connector = aiohttp.TCPConnector(limit=in_flight)
    async with aiohttp.ClientSession(base_url=url, connector=connector) as http:

        async def worker(share: range) -> None:
            nonlocal errors
            for i in share:
                if requests is None:
                    async with http.get("/health") as response:
                        await response.read()
                else:
                    signed = requests[i]
                    headers = {**JSON, AUTH_HEADER: signed.header}
                    async with http.post("/heartbeat", data=signed.body, headers=headers) as response:
                        await response.read()
                errors += response.status != 200

        start = time.perf_counter()
        await asyncio.gather(*(worker(range(w, count, in_flight)) for w in range(in_flight)))
        return count / (time.perf_counter() - start), errors


async def alternating(url: str, beats: list[Signed], in_flight: int, rounds: int = 5) -> tuple[float, float, int, int]:
    """GET /health and the signed heartbeats in `rounds` alternating slices of len(beats) / rounds each: (health/s,
    heartbeats/s, health errors, heartbeat errors). Alternating, so a change in what else runs on the machine (it
    is shared) weighs on both routes alike instead of on whichever ran second."""
    health_s = beat_s = 0.0
    health_errors = beat_errors = 0
    size = len(beats) // rounds
    for r in range(rounds):
        part = beats[r * size : (r + 1) * size]
        rate, errors = await closed_loop(url, None, size, in_flight)
        health_s, health_errors = health_s + size / rate, health_errors + errors
        rate, errors = await closed_loop(url, part, size, in_flight)
        beat_s, beat_errors = beat_s + size / rate, beat_errors + errors
    return rounds * size / health_s, rounds * size / beat_s, health_errors, beat_errors


@dataclass
class Steady:
    latencies: list[float]
    errors: dict[str, int]
    offered_per_s: float
    max_lag_ms: float


async def steady_load(url: str, schedule: list[Signed], connections: int) -> Steady:
    """Send each request at its time (open loop); latency counts from the scheduled time, so a server (or client)
    that falls behind shows in the figures instead of quietly lowering the offered load."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    lag = 0.0
    connector = aiohttp.TCPConnector(limit=connections)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(base_url=url, connector=connector, timeout=timeout) as http:

        async def send(signed: Signed) -> None:
            try:
                headers = {**JSON, AUTH_HEADER: signed.header}
                async with http.post("/heartbeat", data=signed.body, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        key = f"HTTP {response.status}"
                        errors[key] = errors.get(key, 0) + 1
                        return
            except (aiohttp.ClientError, TimeoutError) as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                return
            latencies.append(time.time() - signed.at)

        pending: set[asyncio.Task[None]] = set()
        for signed in schedule:
            wait = signed.at - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
            else:
                lag = max(lag, -wait)
            task = asyncio.create_task(send(signed))
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.gather(*pending)
    span = schedule[-1].at - schedule[0].at
    return Steady(latencies, errors, len(schedule) / span if span > 0 else float("nan"), lag * 1000)


def dispatch(rounds: int, interval_s: float, console: Console) -> tuple[list[float], list[float]]:
    """The devnet with a real miner: POST /tasks -> its container running; DELETE -> the container gone."""
    subprocess.run(["/bin/bash", str(REPO / "scripts/build-task-image.sh")], check=True, capture_output=True)
    primenet = str(Path(sys.executable).with_name("primenet"))
    with tempfile.TemporaryDirectory() as tmp:
        ports = {name: free_port() for name in ("ANVIL", "REDIS", "DISCOVERY", "ORCHESTRATOR", "MINER", "VALIDATOR")}
        env = {
            **os.environ,
            "PRIMENET_DEVNET_STATE_DIR": str(Path(tmp) / "devnet"),
            "PRIMENET_DEVNET_SERVICES": "true",
            "PRIMENET_DEVNET_HEARTBEAT_INTERVAL_S": str(interval_s),
            **{f"PRIMENET_DEVNET_{name}_PORT": str(port) for name, port in ports.items()},
        }
        docker_client = docker.from_env()
        try:
            up = subprocess.run([primenet, "devnet", "up"], env=env, capture_output=True, text=True, timeout=300)
            if up.returncode != 0:
                raise RuntimeError(f"devnet up failed: {up.stderr[-2000:]}")
            token = (Path(tmp) / "devnet" / "admin.token").read_text().strip()
            url = f"http://127.0.0.1:{ports['ORCHESTRATOR']}"
            node = role_account("node").address.lower()
            http = httpx.Client(base_url=url, timeout=30, headers={"Authorization": f"Bearer {token}"})
            deadline = time.monotonic() + 180
            while http.get(f"/nodes/{node}").json().get("status") != "healthy":
                if time.monotonic() > deadline:
                    raise RuntimeError("the devnet's node did not become Healthy within 180 s")
                time.sleep(0.5)
            console.print(f"dispatch: devnet up, node Healthy; {rounds} tasks")

            def containers(task_id: str) -> list[Any]:
                label = {"label": [f"{LABEL_TASK}={task_id}"]}
                return list(docker_client.containers.list(all=True, filters=label, ignore_removed=True))

            def until(task_id: str, done: Callable[[list[Any]], bool], what: str, start: float) -> float:
                while not done(containers(task_id)):
                    if time.perf_counter() - start > 60:
                        raise RuntimeError(f"{what} did not happen within 60 s")
                    time.sleep(0.02)
                return time.perf_counter() - start

            to_running: list[float] = []
            to_removed: list[float] = []
            for i in range(rounds):
                body = {"name": f"dispatch-{i}", "image": TASK_IMAGE, "command": ["sleep", "300"], "nodes": 1}
                start = time.perf_counter()
                created = http.post("/tasks", json=body)
                if created.status_code != 201:
                    raise RuntimeError(f"POST /tasks refused: {created.status_code} {created.text}")
                task_id = created.json()["id"]
                to_running.append(
                    until(
                        task_id, lambda found: any(c.status == "running" for c in found), "the container start", start
                    )
                )
                start = time.perf_counter()
                http.delete(f"/tasks/{task_id}").raise_for_status()
                to_removed.append(until(task_id, lambda found: not found, "the container removal", start))
            return to_running, to_removed
        finally:
            subprocess.run([primenet, "devnet", "down"], env=env, capture_output=True, timeout=120, check=False)
            docker_client.close()


# --- the run ----------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=10_000, help="simulated nodes (default 10000)")
    parser.add_argument("--interval", type=float, default=10.0, help="each node's heartbeat interval, s (10)")
    parser.add_argument("--duration", type=float, default=30.0, help="length of the steady-load phase, s (30)")
    parser.add_argument("--requests", type=int, default=5000, help="requests per route in the throughput phase")
    parser.add_argument("--in-flight", type=int, default=64, help="concurrency of the throughput phase (64)")
    parser.add_argument("--connections", type=int, default=256, help="client connections in the steady phase")
    parser.add_argument("--dispatches", type=int, default=20, help="tasks created and deleted in the dispatch phase")
    parser.add_argument(
        "--phases",
        nargs="+",
        choices=["load", "dispatch"],
        default=["load", "dispatch"],
        help="load: throughput and steady load (no dockerd); dispatch: the devnet with a real miner (default both)",
    )
    args = parser.parse_args()
    # `timeout` or a Ctrl-C in another shell: leave through the `finally` that stops the servers we started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    console = Console(width=max(120, Console().width))
    figures = Figures()
    if "load" in args.phases:
        with tempfile.TemporaryDirectory() as tmp:
            state = Path(tmp)
            devnet = Devnet(DevnetSettings(state_dir=state, anvil_port=free_port(), redis_port=free_port()))
            anvil, redis = devnet.start_anvil(), devnet.start_redis()
            orchestrator = None
            try:
                started = time.perf_counter()
                deployment, _ = asyncio.run(prepare_chain(anvil.url, None, lambda _: None))  # as the devnet has it
                deployment.save(state / "deployment.json")
                audience = orchestrator_audience(deployment.address("ComputePool"), 0)
                nodes = [Account.create() for _ in range(args.n)]
                port = free_port()
                url = f"http://127.0.0.1:{port}"
                env = {
                    **orchestrator_env(redis.url, anvil.url, state / "deployment.json", port),
                    "PRIMENET_HEARTBEAT_INTERVAL_S": str(args.interval),
                    "PRIMENET_UNHEALTHY_AFTER_S": "3600",
                    "PRIMENET_DEAD_AFTER_S": "7200",
                    "PRIMENET_AUTH__RATE_LIMIT": "100000000",
                    "PRIMENET_AUTH__IP_RATE_LIMIT": "0",  # every simulated node sends from 127.0.0.1
                    "PRIMENET_AUTH__NONCE_CAPACITY": "100000000",
                    "PRIMENET_CHAIN_RESYNC_INTERVAL_S": "86400",  # no re-read of the nodes' membership meanwhile
                }
                orchestrator = start_orchestrator(env, url, state / "orchestrator.log")
                # Known only once its chain watch's start-up pass is over (`start_orchestrator`): that pass re-reads
                # every known node's pool membership, and these nodes are not on chain (they would be Ejected).
                asyncio.run(known_healthy(redis.url, nodes, closed_port=free_port()))
                up_s = time.perf_counter() - started
                console.print(f"setup: {args.n} Healthy nodes, orchestrator up in {up_s:.1f} s")
                placed_s = asyncio.run(place_everywhere(url, args.n))
                figures.add(f"a task for all {args.n:,} nodes -> every node assigned", f"{placed_s:.1f} s")
                record("heartbeat.py", f"a task for all {args.n:,} nodes to every node assigned", f"{placed_s:.1f} s")

                # (1) throughput: signed heartbeats against /health, same server, same concurrency
                console.print(f"throughput: {args.requests:,} requests per route, {args.in_flight} in flight")
                count = min(args.requests, 50 * args.n)
                asyncio.run(closed_loop(url, None, 200, args.in_flight))  # warm-up: connections, code paths
                now = time.time()
                beats = [heartbeat(nodes[i % args.n], now, audience) for i in range(count)]
                signing_s = (time.time() - now) / count  # to know how far ahead the steady phase must start
                health_rate, beat_rate, health_errors, beat_errors = asyncio.run(
                    alternating(url, beats, args.in_flight)
                )
                asyncio.run(still_healthy(redis.url, args.n, "throughput phase"))
                ratio = beat_rate / health_rate
                figures.add(f"GET /health, {args.in_flight} in flight", f"{health_rate:,.0f} /s", "", None)
                figures.add(
                    f"POST /heartbeat (signed), {args.in_flight} in flight",
                    f"{beat_rate:,.0f} /s ({beat_errors + health_errors} errors)",
                )
                figures.add("heartbeat / health", f"{ratio:.2f}", f">= {TARGET_RATIO}", ratio >= TARGET_RATIO)
                record(
                    "heartbeat.py",
                    f"N = {args.n:,}, signed heartbeats, {args.in_flight} in flight, against `/health` "
                    f"({health_rate:,.0f}/s)",
                    f"{beat_rate:,.0f}/s, {ratio:.2f} ({beat_errors + health_errors} errors)",
                    f"at least {TARGET_RATIO}",
                )
                # What durability costs: the same heartbeats with Redis fsyncing once a second instead of before each
                # reply (the devnet's and the Pulumi stack's `appendfsync always`).
                now = time.time()
                more = [heartbeat(nodes[i % args.n], now, audience) for i in range(count)]
                relaxed_rate = asyncio.run(
                    heartbeats_with_appendfsync(redis.url, "everysec", url, more, args.in_flight)
                )
                asyncio.run(still_healthy(redis.url, args.n, "everysec phase"))
                figures.add(
                    "POST /heartbeat, appendfsync always / everysec",
                    f"{beat_rate / relaxed_rate:.2f} ({relaxed_rate:,.0f} /s with everysec)",
                )
                record(
                    "heartbeat.py",
                    "signed heartbeats with Redis `appendfsync always` against `everysec`",
                    f"{beat_rate / relaxed_rate:.2f} ({relaxed_rate:,.0f}/s with everysec)",
                )

                # (2) steady load: every node every `interval`, spread evenly, open loop
                per_node = max(1, int(args.duration / args.interval))
                console.print(f"signing {args.n * per_node:,} heartbeats for the steady phase")
                t0 = time.time() + 2 + 1.3 * signing_s * args.n * per_node  # starts once they are all signed
                schedule = sorted(
                    (
                        heartbeat(node, t0 + (i / args.n + k) * args.interval, audience)
                        for k in range(per_node)
                        for i, node in enumerate(nodes)
                    ),
                    key=lambda signed: signed.at,
                )
                if time.time() > t0:
                    console.print(
                        f"[yellow]signing overran the start by {time.time() - t0:.1f} s: first beats leave late[/]"
                    )
                steady = asyncio.run(steady_load(url, schedule, args.connections))
                asyncio.run(still_healthy(redis.url, args.n, "steady phase"))
                p50, p99 = ms(steady.latencies, 0.5), ms(steady.latencies, 0.99)
                errors = sum(steady.errors.values())
                figures.add(
                    f"{args.n:,} nodes every {args.interval:g} s for {per_node * args.interval:g} s",
                    f"{steady.offered_per_s:,.0f} /s offered, {len(schedule):,} sent",
                )
                figures.add("  latency p50", f"{p50:.1f} ms")
                figures.add("  latency p99", f"{p99:.1f} ms", f"< {TARGET_P99_MS:g} ms", p99 < TARGET_P99_MS)
                figures.add(
                    "  errors",
                    f"{errors}" + (f" {steady.errors}" if errors else ""),
                    "0",
                    errors == 0,
                )
                figures.add("  client lag (max)", f"{steady.max_lag_ms:.1f} ms")
                record(
                    "heartbeat.py",
                    f"N = {args.n:,}, steady {steady.offered_per_s:,.0f}/s offered (every node every "
                    f"{args.interval:g} s, {len(schedule):,} beats, client lag at most {steady.max_lag_ms:.0f} ms)",
                    f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, {errors} errors",
                    f"p99 under {TARGET_P99_MS:g} ms, no errors",
                )

                console.print(f"steady phase done ({errors} errors)")
            finally:
                if orchestrator is not None:
                    orchestrator.terminate()
                    try:
                        orchestrator.wait(15)
                    except subprocess.TimeoutExpired:
                        console.print("[yellow]the orchestrator did not stop within 15 s of SIGTERM: killed[/]")
                        orchestrator.kill()
                        orchestrator.wait()
                stop(anvil)
                stop(redis)

    if "dispatch" in args.phases:
        # (3) dispatch on the devnet: a real miner beating every `interval`, its containers seen by dockerd
        running, removed = dispatch(args.dispatches, args.interval, console)
        p50 = ms(running, 0.5)
        figures.add(
            f"POST /tasks -> container running ({args.dispatches}x, beats every {args.interval:g} s)",
            f"p50 {p50:.0f} ms, p99 {ms(running, 0.99):.0f} ms",
            f"p50 < {TARGET_DISPATCH_MS:g} ms",
            p50 < TARGET_DISPATCH_MS,
        )
        removal = f"p50 {ms(removed, 0.5):.0f} ms, p99 {ms(removed, 0.99):.0f} ms"
        figures.add("DELETE /tasks -> container removed", removal)
        record(
            "heartbeat.py",
            f"dispatch, 1 task: `POST /tasks` to its container running on the devnet's miner ({args.dispatches}x, "
            f"beats every {args.interval:g} s)",
            f"p50 {p50:.0f} ms, p99 {ms(running, 0.99):.0f} ms",
            f"p50 under {TARGET_DISPATCH_MS / 1000:g} s",
        )
        record(
            "heartbeat.py",
            "removal: `DELETE /tasks/{id}` to the container gone",
            f"p50 {ms(removed, 0.5):.0f} ms, p99 {ms(removed, 0.99):.0f} ms",
        )
    table = Table(title=f"orchestrator under heartbeat load ({os.cpu_count()} CPUs, client and server share them)")
    for column in ("measure", "figure", "target", "met"):
        table.add_column(column)
    for what, value, target, met in figures.rows:
        table.add_row(what, value, target, "" if met is None else ("[green]yes[/]" if met else "[red]no[/]"))
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
