"""The running miner: onboarding (`onboard`), then the API with the heartbeat and maintenance loops (`create_app`).

`primenet miner run` calls `onboard` (chain registration and the first discovery upload, with progress lines),
then serves `create_app` with uvicorn. Tests do the same in-process.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import structlog
from fastapi import FastAPI

from primenet.chain.contracts import Network
from primenet.chain.deployment import Deployment
from primenet.core.app import background, service_app
from primenet.core.models import ComputeSpecs
from primenet.miner.api import add_routes
from primenet.miner.hardware import compute_units, detect_specs
from primenet.miner.heartbeat import HeartbeatLoop, MinerMemory
from primenet.miner.publisher import DiscoveryPublisher, PublishError
from primenet.miner.registration import Outcome, Progress, Registrar
from primenet.miner.runner import DockerRunner
from primenet.miner.settings import MinerKeys, MinerSettings
from primenet.miner.solver import select_backend
from primenet.miner.state import StateFile

log = structlog.get_logger(__name__)


def specs_source(settings: MinerSettings) -> Callable[[], ComputeSpecs]:
    def specs() -> ComputeSpecs:
        return detect_specs(settings.storage_path, settings.visible_devices)

    return specs


def publisher_for(
    settings: MinerSettings, keys: MinerKeys, chain_id: int, specs: Callable[[], ComputeSpecs]
) -> DiscoveryPublisher:
    return DiscoveryPublisher(
        discovery_url=settings.discovery_url,
        node=keys.node,
        provider=keys.provider.address,
        pool_id=settings.pool_id,
        port=settings.published_port,
        public_ip=settings.public_ip,
        chain_id=chain_id,
        specs=specs,
        refresh_s=settings.discovery_refresh_s,
    )


async def onboard(
    settings: MinerSettings,
    keys: MinerKeys,
    *,
    specs: ComputeSpecs | None = None,
    progress: Progress | None = None,
    upload_attempts: int = 10,
) -> Outcome:
    """Register on chain what is missing, then upload the node's record to discovery (retrying while it is down)."""
    specs = specs or detect_specs(settings.storage_path, settings.visible_devices)
    deployment = Deployment.load(settings.deployment_file)
    async with Network.connect(settings.rpc_url, deployment) as network:
        registrar = Registrar(
            network,
            provider=keys.provider,
            node=keys.node,
            pool_id=settings.pool_id,
            poll_s=settings.whitelist_poll_s,
            whitelist_timeout_s=settings.whitelist_timeout_s,
            **({"progress": progress} if progress else {}),
        )
        outcome = await registrar.register(compute_units(specs))
    publisher = publisher_for(settings, keys, deployment.chain_id, lambda: specs)
    for attempt in range(1, upload_attempts + 1):
        try:
            result = await publisher.publish(force=True)
            (progress or log.info)(f"node record uploaded to discovery ({result})")
            return outcome
        except httpx.HTTPError as exc:
            if attempt == upload_attempts:
                raise
            (progress or log.info)(f"discovery not reachable ({exc!r}); retrying ({attempt}/{upload_attempts})")
            await asyncio.sleep(min(2.0 * attempt, 10.0))
    return outcome


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

    @property
    def node(self) -> str:
        return self.keys.node.address.lower()

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


def create_app(settings: MinerSettings, keys: MinerKeys, specs: ComputeSpecs) -> FastAPI:
    """The miner's API; its lifespan runs the heartbeat and maintenance loops."""
    deployment = Deployment.load(settings.deployment_file)
    network = Network.connect(settings.rpc_url, deployment)
    runner = DockerRunner(node=keys.node.address, storage_path=settings.storage_path, host_gpus=specs.gpus)
    memory = MinerMemory(StateFile(settings.state_file, keys.node.address))
    heartbeat = HeartbeatLoop(
        node=keys.node,
        chain_id=deployment.chain_id,
        runner=runner,
        memory=memory,
        interval_s=settings.heartbeat_interval_s,
        timeout_s=settings.heartbeat_timeout_s,
        max_backoff_s=settings.heartbeat_max_backoff_s,
    )
    publisher = publisher_for(settings, keys, deployment.chain_id, specs_source(settings))
    miner = Miner(settings, keys, network, runner, memory, heartbeat, publisher, asyncio.Lock())

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await heartbeat.resume()
        log.info(
            "miner API up",
            node=miner.node,
            pool_id=settings.pool_id,
            orchestrator=memory.state.orchestrator_url,
            audience=miner.node,
        )
        try:
            async with background(miner_heartbeat=heartbeat.run(), miner_maintenance=miner.maintain()):
                yield
        finally:
            await runner.close()  # containers keep running: a restarted miner re-attaches to them
            await network.aclose()

    app = service_app(title="primenet miner", max_body_bytes=settings.auth.max_body_bytes, lifespan=lifespan)
    app.state.miner = miner
    add_routes(app, miner, select_backend(settings.challenge_backend))
    return app
