"""Keeps each record's chain flags current from contract events, with a periodic full re-read.

Each tick reads the logs of PrimeNetwork and ComputePool since the last applied block, works out which known
nodes they touch (a provider event touches all of that provider's nodes), re-reads those nodes' flags and
writes the changes, each change producing a feed event. The last applied block is stored in Redis, so a
restarted discovery continues where it stopped and misses nothing. Every `full_resync_s` all nodes are
re-read as well, which repairs anything a log could not tell (e.g. a chain reorganisation).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog
from eth_utils.abi import event_abi_to_log_topic
from web3.contract import AsyncContract
from web3.types import LogReceipt

from primenet.chain.artifacts import load_artifact
from primenet.core.app import CHAIN_DOWN_ERRORS
from primenet.discovery.chainview import ChainView
from primenet.discovery.store import DiscoveryStore

log = structlog.get_logger(__name__)

NODE_EVENTS = {
    "ComputeNodeAdded",
    "ComputeNodeRemoved",
    "ComputeNodeValidated",
    "ComputeNodeInvalidated",
    "ComputePoolJoined",
    "ComputePoolLeft",
    "ComputePoolNodeEjected",
    "ComputePoolNodeBlacklisted",
}
PROVIDER_EVENTS = {"ProviderWhitelisted", "ProviderBlacklisted"}
LOG_CHUNK_BLOCKS = 2_000
REFRESH_CONCURRENCY = 16


class ChainSync:
    def __init__(
        self, store: DiscoveryStore, view: ChainView, *, start_block: int, interval_s: float, full_resync_s: float
    ) -> None:
        self.store = store
        self.view = view
        self.start_block = start_block
        self.interval_s = interval_s
        self.full_resync_s = full_resync_s
        self.last_success: float | None = None
        self.last_error: str | None = None
        self.nodes_failed = 0  # node refreshes that failed on their own (the pass went on without them)
        self._last_full = 0.0
        network = view.network
        self._watched: list[AsyncContract] = [network.prime, network.pools]
        self._topics: dict[bytes, tuple[AsyncContract, str]] = {}
        for contract, name in ((network.prime, "PrimeNetwork"), (network.pools, "ComputePool")):
            for entry in load_artifact(name).abi:
                if entry.get("type") == "event" and entry["name"] in NODE_EVENTS | PROVIDER_EVENTS:
                    self._topics[event_abi_to_log_topic(entry)] = (contract, entry["name"])  # type: ignore[arg-type]

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
                self.last_error = None
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # chain or Redis hiccup: report in /health, try again next tick
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("chain sync failed", error=self.last_error)
            await asyncio.sleep(self.interval_s)

    async def tick(self) -> None:
        w3 = self.view.network.w3
        latest = await w3.eth.block_number
        applied, _ = await self.store.sync_state()
        if applied is not None and applied > latest:  # a new chain (e.g. a restarted devnet): start over
            applied = None
        start = self.start_block if applied is None else applied + 1
        touched: set[str] = set()
        for first in range(start, latest + 1, LOG_CHUNK_BLOCKS):
            last = min(first + LOG_CHUNK_BLOCKS - 1, latest)
            logs = await w3.eth.get_logs(
                {"fromBlock": first, "toBlock": last, "address": [c.address for c in self._watched]}
            )
            touched |= await self._touched_nodes(logs)
        if time.monotonic() - self._last_full >= self.full_resync_s:
            touched |= {stored.record.node for stored in await self.store.all_nodes()}
            self._last_full = time.monotonic()
        await self.refresh(touched)
        await self.store.record_sync(max(latest, start - 1))
        self.last_success = time.time()

    async def _touched_nodes(self, logs: list[LogReceipt]) -> set[str]:
        nodes: set[str] = set()
        for entry in logs:
            if not entry["topics"]:
                continue
            known = self._topics.get(bytes(entry["topics"][0]))
            if known is None:
                continue
            contract, name = known
            args: dict[str, Any] = dict(contract.events[name]().process_log(entry)["args"])
            if name in PROVIDER_EVENTS:
                nodes |= await self.store.provider_nodes(args["provider"])
            else:
                nodes.add(str(args["node"]).lower())
        return nodes

    async def refresh(self, nodes: set[str]) -> None:
        """Re-read the chain flags of these nodes (those discovery knows) and store what changed."""
        semaphore = asyncio.Semaphore(REFRESH_CONCURRENCY)

        async def one(node: str) -> None:
            async with semaphore:
                try:
                    await self._refresh_one(node)
                except CHAIN_DOWN_ERRORS:
                    raise  # the chain is down for every node: the pass fails and is retried as a whole
                except Exception:  # one node's failure must not stop the pass over the others
                    self.nodes_failed += 1
                    log.exception("node refresh failed; the next pass retries it", node=node)

        await asyncio.gather(*(one(node) for node in nodes))

    async def _refresh_one(self, node: str) -> None:
        stored = await self.store.get(node)
        if stored is None:
            return
        _, flags = await self.view.check(node, stored.record.provider, stored.record.pool_id)
        changed = await self.store.set_flags(node, flags.as_dict())
        if changed:
            log.info("node flags changed", node=node, **changed)

    def health(self) -> dict[str, Any]:
        age = None if self.last_success is None else time.time() - self.last_success
        return {
            "last_success": self.last_success,
            "age_s": age,
            "fresh": age is not None and age < max(3 * self.interval_s, 10.0),
            "last_error": self.last_error,
            "nodes_failed": self.nodes_failed,
        }
