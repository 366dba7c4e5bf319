"""Failure detection: from a miner's last heartbeat to Unhealthy, to Dead and to its ejection on chain; and the false
positives when 1% of heartbeats are dropped.

`primenet orchestrator` as its own process with the default timers (`primenet.orchestrator.settings`: heartbeat
every 10 s, so a health pass every 5 s; Unhealthy after 45 s of silence, Dead after 120 s, then `ejectNode`), or
shorter ones given here. Two groups of simulated nodes beat it at once (bench/simnodes.py: signed beats, the
miner's backoff after a failed one):
  detection  FAILING nodes registered, validated and joined to pool 0 on a private Anvil; each stops beating at a
             random moment (so the health pass meets it at every phase). From its last answered beat, polled
             every 0.1 s: Unhealthy and Dead in `GET /nodes/{address}`, and ejected (`isNodeInPool` false on
             chain). Reported as the time and as the delay beyond the timer (time - threshold).
  loss       N nodes beating through a loopback HTTP proxy that drops DROP of the heartbeat requests (closes the
             connection without forwarding: the miner sees a failed beat and backs off), for as long as the
             detection phase runs (at least DURATION). The loss nodes' moves to Unhealthy and to Dead (the
             orchestrator's transition counters, less the failing nodes' own) are false positives; so are the
             nodes seen Unhealthy or Dead by polling `GET /nodes` every second (which misses short ones).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp
import httpx
from aiohttp import web

from primenet.chain.contracts import Network
from primenet.chain.deployment import Deployment
from primenet.devnet.processes import free_port
from primenet.orchestrator.settings import OrchestratorSettings
from results import record
from simnodes import (
    ADMIN,
    MINER_MAX_BACKOFF_S,
    Coordinator,
    Fleet,
    SimNode,
    coordinator,
    join_on_chain,
    make_known,
    new_nodes,
)


class Timers(Protocol):
    interval: float
    max_backoff: float
    dead_after: float


class DroppingProxy:
    """Loopback HTTP proxy to the orchestrator that drops `rate` of the `POST /heartbeat` requests."""

    def __init__(self, upstream: str, rate: float) -> None:
        self.upstream = upstream
        self.rate = rate
        self.forwarded = 0
        self.dropped = 0
        self.port = free_port()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=512))
        app = web.Application()
        app.router.add_post("/heartbeat", self.heartbeat)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def heartbeat(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if random.random() < self.rate:
            self.dropped += 1
            if request.transport is not None:
                request.transport.close()  # lost: the node's request gets no answer
            return web.Response(status=204)
        assert self._session is not None
        self.forwarded += 1
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with self._session.post(f"{self.upstream}/heartbeat", data=body, headers=headers) as upstream:
            content = await upstream.read()
            keep = {k: v for k, v in upstream.headers.items() if k.lower().startswith(("content-type", "x-"))}
            return web.Response(body=content, status=upstream.status, headers=keep)


async def transitions(http: httpx.AsyncClient) -> dict[str, float]:
    """The orchestrator's count of status moves, by new status (`primenet_orchestrator_transitions_total`): every
    move, also one the once-a-second poll of `GET /nodes` misses (a node Unhealthy until its next beat)."""
    counts: dict[str, float] = {}
    for line in (await http.get("/metrics", follow_redirects=True)).text.splitlines():
        if line.startswith("primenet_orchestrator_transitions_total{"):
            labels, value = line.rsplit(" ", 1)
            status = labels.split('status="', 1)[1].split('"', 1)[0]
            counts[status] = float(value)
    return counts


@dataclass
class Detected:
    last_beat: float
    unhealthy: float | None = None
    dead: float | None = None
    ejected: float | None = None


@dataclass
class Outcome:
    detected: list[Detected]
    false_nodes: dict[str, set[str]] = field(default_factory=dict)  # loss node -> statuses seen other than healthy
    false_transitions: dict[str, int] = field(default_factory=dict)  # status -> moves of loss nodes into it
    loss_nodes: int = 0
    loss_beats_ok: int = 0
    dropped: int = 0
    forwarded: int = 0
    longest_silence_s: float = 0.0
    span_s: float = 0.0


async def measure(run: Coordinator, failing: int, n: int, drop: float, duration_s: float, args: Timers) -> Outcome:
    interval_s = args.interval
    chain_nodes = new_nodes(failing)
    await join_on_chain(run.anvil.url, run.state / "deployment.json", [node.account for node in chain_nodes])
    loss_nodes = new_nodes(n)
    run.start_orchestrator()
    await make_known(run, chain_nodes + loss_nodes)  # Healthy and just beaten: their beats start now
    proxy = DroppingProxy(run.url, drop)
    await proxy.start()
    direct = Fleet(chain_nodes, run.url, run.audience, interval_s)
    lossy = Fleet(loss_nodes, proxy.url, run.audience, interval_s, max_backoff_s=args.max_backoff)
    await direct.start()
    await lossy.start()
    started = time.time()
    outcome = Outcome(detected=[], loss_nodes=n)
    by_address = {node.address.lower(): node for node in loss_nodes}
    try:
        async with (
            httpx.AsyncClient(base_url=run.url, headers=ADMIN, timeout=30) as http,
            Network.connect(run.anvil.url, Deployment.load(run.state / "deployment.json")) as network,
        ):
            await asyncio.sleep(2 * interval_s)  # every node has beaten (through the proxy too) a few times

            async def fail(node: SimNode) -> Detected:
                await asyncio.sleep(random.uniform(0, interval_s))
                node.alive = False
                node.wake.set()
                await asyncio.sleep(0.5)  # a beat in flight lands
                assert node.last_ok is not None
                seen = Detected(last_beat=node.last_ok)
                address = node.address.lower()
                deadline = time.time() + args.dead_after + 60  # a node never ejected fails the bench, not hangs it
                while seen.ejected is None or seen.dead is None:
                    if time.time() > deadline:
                        raise RuntimeError(f"{address} not Dead and ejected {args.dead_after + 60:.0f} s after failing")
                    status = (await http.get(f"/nodes/{address}")).json()["status"]
                    now = time.time()
                    if status in ("unhealthy", "dead", "ejected") and seen.unhealthy is None:
                        seen.unhealthy = now
                    if status in ("dead", "ejected") and seen.dead is None:
                        seen.dead = now
                    if seen.ejected is None and not await network.is_node_in_pool(0, node.address):
                        seen.ejected = time.time()
                    await asyncio.sleep(0.1)
                return seen

            async def watch_loss(stop: asyncio.Event) -> None:
                while not stop.is_set():
                    for row in (await http.get("/nodes")).json()["nodes"]:
                        if row["address"] in by_address and row["status"] != "healthy":
                            outcome.false_nodes.setdefault(row["address"], set()).add(row["status"])
                    await asyncio.sleep(1.0)

            stop = asyncio.Event()
            watcher = asyncio.create_task(watch_loss(stop))
            before = await transitions(http)
            outcome.detected = list(await asyncio.gather(*(fail(node) for node in chain_nodes)))
            remaining = duration_s - (time.time() - started)
            if remaining > 0:
                print(f"detection done; the loss phase runs {remaining:.0f} s more")
                await asyncio.sleep(remaining)
            stop.set()
            await watcher
            after = await transitions(http)
            # Every failing node moved to each of these once; every other move was a loss node's.
            for status in ("unhealthy", "dead"):
                outcome.false_transitions[status] = int(after.get(status, 0) - before.get(status, 0)) - failing
    finally:
        outcome.span_s = time.time() - started
        await lossy.stop()
        await direct.stop()
        await proxy.stop()
    outcome.dropped, outcome.forwarded = proxy.dropped, proxy.forwarded
    outcome.loss_beats_ok = sum(node.beats_ok for node in loss_nodes)
    outcome.longest_silence_s = max(node.max_silence_s for node in loss_nodes)
    return outcome


def silence_after(failures: int, interval_s: float, max_backoff_s: float) -> float:
    """How long a miner is silent (last answered beat to the next) when `failures` beats in a row fail."""
    return interval_s + sum(min(interval_s * float(2**k), max_backoff_s) for k in range(1, failures + 1))


def main() -> int:
    defaults = OrchestratorSettings.model_fields
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--interval", type=float, default=defaults["heartbeat_interval_s"].default)
    parser.add_argument("--unhealthy-after", type=float, default=defaults["unhealthy_after_s"].default)
    parser.add_argument("--dead-after", type=float, default=defaults["dead_after_s"].default)
    parser.add_argument(
        "--max-backoff",
        type=float,
        default=MINER_MAX_BACKOFF_S,
        help=f"the simulated miners' longest wait after failed beats, s ({MINER_MAX_BACKOFF_S:g}: the miner's default)",
    )
    parser.add_argument("--failing", type=int, default=5, help="nodes that stop beating (default 5)")
    parser.add_argument("-n", type=int, default=500, help="nodes beating through the dropping proxy (default 500)")
    parser.add_argument("--drop", type=float, default=0.01, help="share of heartbeats dropped (default 0.01)")
    parser.add_argument("--duration", type=float, default=180.0, help="least length of the loss phase, s (180)")
    args = parser.parse_args()
    settings = {
        "PRIMENET_HEARTBEAT_INTERVAL_S": str(args.interval),
        "PRIMENET_UNHEALTHY_AFTER_S": str(args.unhealthy_after),
        "PRIMENET_DEAD_AFTER_S": str(args.dead_after),
    }
    with coordinator(settings) as run:
        outcome = asyncio.run(measure(run, args.failing, args.n, args.drop, args.duration, args))

    timers = f"beats every {args.interval:g} s, Unhealthy after {args.unhealthy_after:g} s, "
    timers += f"Dead after {args.dead_after:g} s, miners back off at most {args.max_backoff:g} s"
    rows: list[tuple[str, str, str]] = []
    thresholds = (("unhealthy", args.unhealthy_after), ("dead", args.dead_after), ("ejected", args.dead_after))
    for what, threshold in thresholds:
        times = [getattr(d, what) - d.last_beat for d in outcome.detected if getattr(d, what) is not None]
        beyond = [t - threshold for t in times]
        label = {"unhealthy": "Unhealthy", "dead": "Dead", "ejected": "ejected on chain"}[what]
        rows.append(
            (
                f"failure detection ({timers}; {len(times)} nodes): last heartbeat to {label}",
                f"{min(times):.1f}-{max(times):.1f} s (beyond the {threshold:g} s timer: "
                f"{min(beyond):.1f}-{max(beyond):.1f} s)",
                f"within {args.interval / 2:g} s of the timer (one health pass)" if what != "ejected" else "none",
            )
        )
    false_unhealthy = sum(1 for statuses in outcome.false_nodes.values() if statuses)
    false_dead = sum(1 for statuses in outcome.false_nodes.values() if statuses & {"dead", "ejected"})
    sent = outcome.dropped + outcome.forwarded
    node_hours = outcome.loss_nodes * outcome.span_s / 3600
    rows.append(
        (
            f"false positives, {args.drop:.0%} of heartbeats dropped ({outcome.loss_nodes} nodes, "
            f"{outcome.span_s:.0f} s, {sent:,} beats, {outcome.dropped} dropped; {timers})",
            f"{outcome.false_transitions.get('unhealthy', 0)} moves to Unhealthy, "
            f"{outcome.false_transitions.get('dead', 0)} to Dead ({node_hours:.2f} node-hours; nodes seen: "
            f"{false_unhealthy} Unhealthy, {false_dead} Dead); longest silence {outcome.longest_silence_s:.0f} s",
            "0 Dead",
        )
    )
    for figure, measured, target in rows:
        print(f"{figure}: {measured}")
        record("detection.py", figure, measured, target)
    for failures in range(1, 5):
        silence = silence_after(failures, args.interval, args.max_backoff)
        print(f"  silence after {failures} failed beat(s) in a row: {silence:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
