"""The chain watch: the pool contract's word on our nodes overrides anything a node or our own records say.

A loop follows the pool contract's membership logs for our pool (`ComputePoolLeft`, `ComputePoolNodeEjected`,
`ComputePoolNodeBlacklisted`) from a cursor stored in Redis (`{prefix}:chain_block`), so a restarted orchestrator
misses nothing, and every `chain_resync_interval_s` re-reads every known node as well (what a log cannot tell:
a reorganisation, a cursor from another chain). The nodes touched are read in JSON-RPC batches
(`isNodeInPool`, `isNodeBlacklistedFromPool`) and `decide.on_chain` says what follows: a node blacklisted on chain,
by our ban route or by any direct call of the pool's creator or manager, is Banned; a node we run that the chain no
longer lists in the pool is Ejected. Either way its assignment is withdrawn at once and it gets no other.

A pass that fails (chain or Redis down) is reported in `/health` as the `chainwatch` loop and retried with a
doubling wait (at most `MAX_BACKOFF_S`); the cursor only moves after a pass applied everything up to it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

import structlog
from eth_utils.abi import event_abi_to_log_topic
from prometheus_client import Counter
from web3.types import FilterParams

from primenet.chain.artifacts import load_artifact
from primenet.chain.batch import BatchReader, Read, view_function
from primenet.chain.errors import ContractRevertError
from primenet.orchestrator.decide import on_chain
from primenet.orchestrator.models import NodeStatus
from primenet.orchestrator.orchestrator import Orchestrator

log = structlog.get_logger(__name__)

WATCHED_EVENTS = ("ComputePoolLeft", "ComputePoolNodeEjected", "ComputePoolNodeBlacklisted")
LOG_CHUNK_BLOCKS = 2_000
BATCH_NODES = 250  # two reads per node: 500 calls per JSON-RPC batch
MAX_BACKOFF_S = 60.0

CHAIN_MOVES = Counter(
    "primenet_orchestrator_chain_moves", "Node status changes the chain watch made, by new status", ["status"]
)


def _topics() -> list[bytes]:
    return [
        event_abi_to_log_topic(entry)  # type: ignore[arg-type]
        for entry in load_artifact("ComputePool").abi
        if entry.get("type") == "event" and entry["name"] in WATCHED_EVENTS
    ]


class ChainWatch:
    def __init__(self, orchestrator: Orchestrator, reader: BatchReader, *, start_block: int) -> None:
        self.orchestrator = orchestrator
        self.reader = reader
        self.start_block = start_block
        self.topics = _topics()
        self._last_full: float | None = None

    async def run(self) -> None:
        settings, stats = self.orchestrator.settings, self.orchestrator.stats
        failures = 0
        while True:
            try:
                await self.tick()
                stats.ok("chainwatch")
                failures = 0
                wait_s = settings.chain_check_interval_s
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # chain or Redis down: report, back off, try again
                stats.failed("chainwatch", exc)
                failures += 1
                wait_s = min(settings.chain_check_interval_s * 2**failures, MAX_BACKOFF_S)
            await asyncio.sleep(wait_s)

    async def tick(self) -> None:
        """One pass: the logs since the cursor, plus every node when a full resync is due; then the cursor moves."""
        network, store = self.orchestrator.network, self.orchestrator.store
        pool_id = self.orchestrator.settings.pool_id
        latest = await network.w3.eth.block_number
        applied = await store.chain_block()
        if applied is not None and applied > latest:  # a new chain (a restarted devnet): start over
            applied = None
        start = self.start_block if applied is None else applied + 1
        touched: set[str] = set()
        pool_topic = "0x" + pool_id.to_bytes(32, "big").hex()
        for first in range(start, latest + 1, LOG_CHUNK_BLOCKS):
            last = min(first + LOG_CHUNK_BLOCKS - 1, latest)
            params: FilterParams = {
                "fromBlock": first,
                "toBlock": last,
                "address": network.pools.address,
                "topics": [["0x" + topic.hex() for topic in self.topics], pool_topic],
            }
            for entry in await network.w3.eth.get_logs(params):
                if len(entry["topics"]) == 4:  # (event, poolId, provider, node): all indexed
                    touched.add("0x" + bytes(entry["topics"][3])[-20:].hex())
        now = time.monotonic()
        if self._last_full is None or now - self._last_full >= self.orchestrator.settings.chain_resync_interval_s:
            touched |= await store.known_nodes()
            self._last_full = now
        else:
            touched = {node for node in touched if await store.is_known(node)}
        await self.check(touched)
        await store.set_chain_block(max(latest, start - 1))

    async def check(self, nodes: Iterable[str]) -> None:
        """Read these nodes' membership and blacklisting in batches and apply `decide.on_chain`."""
        orchestrator = self.orchestrator
        pools, pool_id = orchestrator.network.pools.address, orchestrator.settings.pool_id
        in_pool, blacklisted = (
            view_function("ComputePool", "isNodeInPool"),
            view_function("ComputePool", "isNodeBlacklistedFromPool"),
        )
        wanted = sorted(nodes)
        for start in range(0, len(wanted), BATCH_NODES):
            part = wanted[start : start + BATCH_NODES]
            reads = [
                read
                for node in part
                for read in (Read(pools, in_pool, (pool_id, node)), Read(pools, blacklisted, (pool_id, node)))
            ]
            answers = await self.reader.read(reads)
            rows = {row.address: row for row in await orchestrator.store.nodes(part)}
            for i, node in enumerate(part):
                member, barred = answers[2 * i], answers[2 * i + 1]
                if isinstance(member, ContractRevertError):
                    raise member
                if isinstance(barred, ContractRevertError):
                    raise barred
                row = rows.get(node)
                if row is None:
                    continue
                to = on_chain(row.status, in_pool=bool(member[0]), blacklisted=bool(barred[0]))
                if to is not None:
                    await self.apply(node, row.status, to)

    async def apply(self, node: str, status: NodeStatus, to: NodeStatus) -> None:
        orchestrator = self.orchestrator
        previous = await orchestrator.store.transition(node, to, now=orchestrator.clock(), expected=[status])
        if previous is None:  # it moved meanwhile: the next pass sees its new status
            return
        # Out of the pool on chain: the task goes now, not after the grace a merely silent node gets.
        await orchestrator.store.assign(node, None)
        CHAIN_MOVES.labels(to.value).inc()
        log.warning("the chain took a node out of the pool", node=node, old=status.value, new=to.value)
        await orchestrator.moved(node, to, previous)
