"""Discovery: the signed node registry. Miners publish how to reach them; validators and pool owners read it.

`create_app(settings)` builds the store, the chain view and sync, and the request authenticators, and serves the
routes of `primenet.discovery.routes` (listed there) on top of them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from primenet.chain.batch import BatchReader
from primenet.chain.contracts import Network
from primenet.chain.deployment import Deployment
from primenet.core.app import answer_chain_down, background, service_app
from primenet.core.auth import IpLimiter, RequestAuthenticator
from primenet.core.redisdb import connect
from primenet.discovery.chainview import ChainView
from primenet.discovery.routes import router
from primenet.discovery.routes.feed import MAX_FEED_WAIT_S
from primenet.discovery.settings import DiscoverySettings
from primenet.discovery.store import DiscoveryStore
from primenet.discovery.sync import ChainSync


def create_app(settings: DiscoverySettings) -> FastAPI:
    redis = connect(settings.redis_url)
    blocking_redis = connect(settings.redis_url, socket_timeout=MAX_FEED_WAIT_S + 10)
    deployment = Deployment.load(settings.deployment_file)
    network = Network.connect(settings.rpc_url, deployment)
    reader = BatchReader(settings.rpc_url)
    view = ChainView(network, reader, ttl_s=settings.role_cache_s)
    store = DiscoveryStore(
        redis, prefix=settings.key_prefix, feed_max_len=settings.feed_max_len, blocking=blocking_redis
    )
    sync = ChainSync(
        store,
        view,
        start_block=deployment.block,
        interval_s=settings.sync_interval_s,
        full_resync_s=settings.full_resync_interval_s,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            async with background(discovery_chain_sync=sync.run()):
                yield
        finally:
            await network.aclose()
            await reader.aclose()
            await redis.aclose()
            await blocking_redis.aclose()

    app = service_app(
        title="primenet discovery",
        max_body_bytes=settings.auth.max_body_bytes,
        lifespan=lifespan,
        metrics=settings.metrics_exposure(),
    )
    # Exactly what `primenet.discovery.deps` reads.
    app.state.settings = settings
    app.state.store = store
    app.state.view = view
    app.state.sync = sync
    app.state.admin_token = settings.admin_token
    # One per-IP budget for both authenticators: a client cannot double it by alternating routes.
    per_ip = IpLimiter(limit=settings.auth.ip_rate_limit, window_s=settings.auth.rate_window_s)
    app.state.signed_auth = RequestAuthenticator(
        redis=redis, audience=settings.audience, chain_id=deployment.chain_id, policy=settings.auth, ip_limiter=per_ip
    )
    app.state.validators_auth = RequestAuthenticator(
        redis=redis,
        audience=settings.audience,
        chain_id=deployment.chain_id,
        policy=settings.auth,
        authorize=view.is_validator,
        key_prefix="auth-v",
        ip_limiter=per_ip,
    )
    answer_chain_down(app)
    app.include_router(router)
    return app
