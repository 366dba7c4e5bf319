"""The running miner: what the API routes and the background loops share, and the maintenance loop itself."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import structlog

from primenet.chain.contracts import Network
from primenet.miner.heartbeat import HeartbeatLoop
from primenet.miner.publisher import DiscoveryPublisher, PublishError
from primenet.miner.runner import DockerRunner
from primenet.miner.settings import MinerKeys, MinerSettings
from primenet.miner.state import MinerMemory

log = structlog.get_logger(__name__)


@dataclass
class Miner:
    """Everything the API routes and the loops share."""

    settings: MinerSettings
    keys: MinerKeys
    network: Network
    runner: DockerRunner
    memory: MinerMemory
    heartbeat: HeartbeatLoop
    publisher: DiscoveryPublisher
    join_lock: asyncio.Lock
    # False from the moment `primenet miner run` serves until its first upload to discovery is done: /health
    # answers 503 meanwhile, so "the miner answers /health" still means "registered and in discovery".
    listed: bool = True

    @property
    def node(self) -> str:
        return self.keys.node.address.lower()

    async def pool_owners(self) -> tuple[str, str]:
        """The creator and the compute manager of this node's pool, on chain now (lower case).

        Read whole, so that the authorizer built on it (`core.auth.cached_members`) pays one chain call per TTL
        however many distinct keys present themselves."""
        pool = await self.network.pool(self.settings.pool_id)
        return pool.creator.lower(), pool.compute_manager.lower()

    async def maintain(self) -> None:
        """Re-publish the record when IP or specs change; notice when the node is no longer in its pool."""
        while True:
            await asyncio.sleep(self.settings.discovery_check_interval_s)
            try:
                await self.publisher.publish()
            except PublishError as exc:
                log.warning("discovery refused the node record", code=exc.code, error=str(exc))
            except Exception as exc:  # keep checking: discovery may come back
                log.warning("discovery upload failed", error=str(exc))
            try:
                await self.check_membership()
            except Exception as exc:
                log.warning("membership check failed", error=str(exc))

    async def check_membership(self) -> None:
        """Ejected or left on chain: stop heartbeats and the task (the reference's chain monitor does the same)."""
        state = self.memory.state
        if state.pool_id is None:
            return
        async with self.join_lock:
            if await self.network.node_pool(self.node) == state.pool_id:
                return
            log.warning("the node is no longer in its pool on chain; heartbeats stop", pool_id=state.pool_id)
            self.memory.update(pool_id=None, orchestrator_url=None, assignment=None)
            await self.runner.reconcile(None)
            self.heartbeat.wake()
