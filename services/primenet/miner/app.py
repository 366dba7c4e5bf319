"""The miner's API app (`create_app`): its routes are in `primenet.miner.routes`, its lifespan runs the heartbeat
and maintenance loops. `primenet miner run` serves it with uvicorn after `primenet.miner.onboarding.register` and
uploads the record (`onboarding.upload`) once it listens."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from docker.errors import DockerException
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from primenet.chain.contracts import Network
from primenet.chain.deployment import Deployment
from primenet.chain.errors import ChainError
from primenet.core.app import answer_chain_down, background, service_app
from primenet.core.auth import IpLimiter, RequestAuthenticator, cached, cached_members, orchestrator_audience
from primenet.core.errors import ApiError, error_response
from primenet.core.models import ComputeSpecs
from primenet.core.replies import ReplyVerifier
from primenet.miner.challenge_book import ChallengeBook
from primenet.miner.heartbeat import HeartbeatLoop
from primenet.miner.miner import Miner
from primenet.miner.onboarding import publisher_for, specs_source
from primenet.miner.routes import router
from primenet.miner.runner import DockerRunner
from primenet.miner.settings import MinerKeys, MinerSettings
from primenet.miner.solver import select_backend
from primenet.miner.state import MinerMemory, StateFile

log = structlog.get_logger(__name__)


async def on_docker_down(_: Request, exc: Exception) -> JSONResponse:
    return error_response(ApiError(503, "docker_unavailable", f"the Docker engine failed: {exc}"))


def create_app(settings: MinerSettings, keys: MinerKeys, specs: ComputeSpecs) -> FastAPI:
    """The miner's API; its lifespan runs the heartbeat and maintenance loops."""
    deployment = Deployment.load(settings.deployment_file)
    network = Network.connect(settings.rpc_url, deployment)
    runner = DockerRunner(
        node=keys.node.address,
        storage_path=settings.storage_path,
        host_gpus=specs.gpus,
        policy=settings.task_policy(),
    )
    memory = MinerMemory(StateFile(settings.state_file, keys.node.address))

    async def orchestrator_key() -> tuple[str]:
        # Whose work orders are obeyed: the compute manager of this node's pool as the chain says now, the key that
        # signed the invite the chain accepted (not whatever an invite request or a reply claims).
        return ((await network.pool(settings.pool_id)).compute_manager,)

    heartbeat = HeartbeatLoop(
        node=keys.node,
        chain_id=deployment.chain_id,
        audience_of=lambda pool_id: orchestrator_audience(deployment.address("ComputePool"), pool_id),
        runner=runner,
        memory=memory,
        interval_s=settings.heartbeat_interval_s,
        timeout_s=settings.heartbeat_timeout_s,
        max_backoff_s=settings.heartbeat_max_backoff_s,
        replies=ReplyVerifier(cached_members(orchestrator_key, settings.role_cache_s)),
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

    app = service_app(
        title="primenet miner",
        max_body_bytes=settings.auth.max_body_bytes,
        lifespan=lifespan,
        metrics=settings.metrics_exposure(),
    )
    # Every signed request is addressed to this node: audience = its address, so it cannot be replayed elsewhere.
    # Every route has an authorizer, so only validators and the pool's owners are ever admitted: keys of anyone
    # else record no nonce here. One per-IP budget for the whole API.
    common: dict[str, Any] = {
        "audience": miner.node,
        "chain_id": deployment.chain_id,
        "policy": settings.auth,
        "ip_limiter": IpLimiter(limit=settings.auth.ip_rate_limit, window_s=settings.auth.rate_window_s),
    }
    app.state.miner = miner
    app.state.book = ChallengeBook(capacity=settings.max_pending_challenges, ttl_s=settings.challenge_state_ttl_s)
    app.state.backend = select_backend(settings.challenge_backend)
    app.state.validators_auth = RequestAuthenticator(
        redis=None, **common, authorize=cached(network.is_validator, settings.role_cache_s), key_prefix="auth-v"
    )
    app.state.pool_owners_auth = RequestAuthenticator(
        redis=None,
        **common,
        authorize=cached_members(miner.pool_owners, settings.role_cache_s),
        refusal_code="not_pool_owner",
        refusal_reason=f"is neither creator nor manager of pool {settings.pool_id}",
    )
    answer_chain_down(app, ChainError)
    app.add_exception_handler(DockerException, on_docker_down)
    app.include_router(router)
    return app
