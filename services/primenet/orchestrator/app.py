"""The orchestrator's HTTP API (`routes/`); its lifespan runs the loops (`primenet.orchestrator.orchestrator`).

POST   /heartbeat                 signed by the node key for this pool (`orchestrator_audience`): Heartbeat -> reply
POST   /tasks, GET /tasks, GET /tasks/{id}, DELETE /tasks/{id}                        admin (Bearer)
GET    /nodes, GET /nodes/{address}                                                    admin
GET    /nodes/{address}/logs?tail=N, POST /nodes/{address}/restart, POST /nodes/{address}/ban   admin
GET    /store, POST /store/confirm     the store-lost hold (`orchestrator.guard`); the operator ends it       admin
GET    /health (state of each loop, Redis and the store; error strings only with the admin token), GET /metrics
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from eth_account.signers.local import LocalAccount
from fastapi import FastAPI

from primenet.chain.batch import BatchReader
from primenet.chain.contracts import Network
from primenet.chain.deployment import Deployment
from primenet.core.app import answer_chain_down, background, service_app
from primenet.core.auth import RequestAuthenticator, cached, orchestrator_audience
from primenet.core.discovery_client import DiscoveryReader
from primenet.core.redisdb import connect
from primenet.core.replies import ReplySigner
from primenet.orchestrator.chainwatch import ChainWatch
from primenet.orchestrator.guard import StoreGuard
from primenet.orchestrator.orchestrator import Orchestrator
from primenet.orchestrator.peers import MinerClient
from primenet.orchestrator.routes import router
from primenet.orchestrator.settings import OrchestratorSettings
from primenet.orchestrator.store import OrchestratorStore


def create_app(settings: OrchestratorSettings, manager: LocalAccount) -> FastAPI:
    """`manager` is the pool's compute manager key: it signs invites, discovery reads, miner calls, ejections."""
    deployment = Deployment.load(settings.deployment_file)
    redis = connect(settings.redis_url)
    network = Network.connect(settings.rpc_url, deployment)
    store = OrchestratorStore(redis, prefix=settings.key_prefix)
    discovery = DiscoveryReader(
        settings.discovery_url, manager, chain_id=deployment.chain_id, audience=settings.discovery_audience
    )
    miners = MinerClient(
        manager,
        chain_id=deployment.chain_id,
        timeout_s=settings.miner_timeout_s,
        addresses=settings.node_addresses(),
        max_reply_bytes=settings.miner_max_reply_bytes,
        scheme=settings.node_scheme,
    )
    orchestrator = Orchestrator(
        settings=settings, store=store, network=network, manager=manager, discovery=discovery, miners=miners
    )
    reader = BatchReader(settings.rpc_url)
    chainwatch = ChainWatch(orchestrator, reader, start_block=deployment.block)
    guard = StoreGuard(orchestrator)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            await guard.first_check()
            async with background(
                orchestrator_store_guard=guard.run(),
                orchestrator_monitor=orchestrator.run_monitor(),
                orchestrator_inviter=orchestrator.run_inviter(),
                orchestrator_health=orchestrator.run_health(),
                orchestrator_scheduler=orchestrator.run_scheduler(),
                orchestrator_chainwatch=chainwatch.run(),
            ):
                yield
        finally:
            await discovery.aclose()
            await miners.aclose()
            await network.aclose()
            await reader.aclose()
            await redis.aclose()

    app = service_app(
        title="primenet orchestrator",
        max_body_bytes=settings.auth.max_body_bytes,
        lifespan=lifespan,
        metrics=settings.metrics_exposure(),
    )
    answer_chain_down(app)
    # What `deps` reads, and nothing else.
    app.state.orchestrator = orchestrator
    app.state.store = store
    app.state.guard = guard
    app.state.miners = miners
    # Bound to this pool of this deployment: a beat signed for another pool's orchestrator is refused here, and
    # a reply of another pool's orchestrator by its miners.
    audience = orchestrator_audience(deployment.address("ComputePool"), settings.pool_id)
    app.state.reply_signer = ReplySigner(manager, audience=audience, chain_id=deployment.chain_id)
    app.state.nodes_auth = RequestAuthenticator(
        redis=redis,
        audience=audience,
        chain_id=deployment.chain_id,
        policy=settings.auth,
        key_prefix=f"{settings.key_prefix}:auth",
        # Only nodes this orchestrator knows are admitted, so beats signed by throwaway keys record no nonces.
        # "Known" is remembered for a minute (the beat itself re-reads the node), "unknown" for a few seconds (a
        # node stored just now is heard soon).
        authorize=cached(store.is_known, 60.0, refused_ttl_s=5.0),
        refusal_code="unknown_node",
        refusal_reason="is not a node of this orchestrator's pool",
    )
    app.state.admin_token = settings.admin_token
    app.include_router(router)
    return app
