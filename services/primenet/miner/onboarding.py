"""Onboarding: chain registration (`register`), then the first upload to discovery (`upload`) once the API serves.

The order matters: whoever learns of the node from discovery (a validator, to challenge it; an orchestrator, to
invite it) calls its API at once, so `primenet miner run` registers on chain, starts serving
`primenet.miner.app.create_app` with uvicorn, and only when the socket listens uploads the record
(`core.app.serve(when_serving=...)`). A record published before that made the validator's first challenge fail
`unreachable` and back off. `onboard` does both steps for callers that serve the API themselves (tests, in-process);
`publisher_for` builds the discovery publisher all of them use.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import structlog

from primenet.chain.contracts import Network
from primenet.chain.deployment import Deployment
from primenet.core.models import ComputeSpecs
from primenet.miner.hardware import compute_units, detect_specs
from primenet.miner.publisher import DiscoveryPublisher
from primenet.miner.registration import Outcome, Progress, Registrar
from primenet.miner.settings import MinerKeys, MinerSettings

log = structlog.get_logger(__name__)


def specs_source(settings: MinerSettings) -> Callable[[], ComputeSpecs]:
    """The host's specs, detected afresh at each call (the maintenance loop re-publishes them when they change)."""

    def specs() -> ComputeSpecs:
        return detect_specs(settings.storage_path, settings.visible_devices)

    return specs


def publisher_for(
    settings: MinerSettings, keys: MinerKeys, chain_id: int, specs: Callable[[], ComputeSpecs]
) -> DiscoveryPublisher:
    """The publisher of this node's record to `settings.discovery_url`, signed by the node key."""
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


async def register(
    settings: MinerSettings,
    keys: MinerKeys,
    *,
    specs: ComputeSpecs | None = None,
    progress: Progress | None = None,
) -> Outcome:
    """Register on chain what is missing (provider, stake, whitelist wait, node); nothing is uploaded yet."""
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
        return await registrar.register(compute_units(specs))


async def upload(
    settings: MinerSettings,
    keys: MinerKeys,
    *,
    specs: ComputeSpecs,
    progress: Progress | None = None,
    upload_attempts: int = 10,
) -> str | None:
    """Upload the node's record to discovery (retrying while it is unreachable); returns discovery's result.

    Call it once the API serves (see the module's docstring). Raises `PublishError` for a refusal, the last
    `httpx.HTTPError` when discovery stayed unreachable for `upload_attempts`."""
    chain_id = Deployment.load(settings.deployment_file).chain_id
    publisher = publisher_for(settings, keys, chain_id, lambda: specs)
    for attempt in range(1, upload_attempts + 1):
        try:
            result = await publisher.publish(force=True)
            (progress or log.info)(f"node record uploaded to discovery ({result})")
            return result
        except httpx.HTTPError as exc:
            if attempt == upload_attempts:
                raise
            (progress or log.info)(f"discovery not reachable ({exc!r}); retrying ({attempt}/{upload_attempts})")
            await asyncio.sleep(min(2.0 * attempt, 10.0))
    return None


async def onboard(
    settings: MinerSettings,
    keys: MinerKeys,
    *,
    specs: ComputeSpecs | None = None,
    progress: Progress | None = None,
    upload_attempts: int = 10,
) -> Outcome:
    """`register`, then `upload` at once: for callers whose API already serves (or that do not serve one)."""
    specs = specs or detect_specs(settings.storage_path, settings.visible_devices)
    outcome = await register(settings, keys, specs=specs, progress=progress)
    await upload(settings, keys, specs=specs, progress=progress, upload_attempts=upload_attempts)
    return outcome
