"""The validator process: the loop (`primenet.validator.loop`) plus a small HTTP API for operators.

`create_app(settings, account)` builds the loop and its clients, runs the loop for the app's lifetime, and serves
the routes of `primenet.validator.routes` (listed there).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis
from eth_account.signers.local import LocalAccount
from fastapi import FastAPI

from primenet.chain.contracts import Network
from primenet.chain.deployment import Deployment
from primenet.core.app import background, service_app
from primenet.core.discovery_client import DiscoveryReader
from primenet.core.redisdb import connect
from primenet.validator.challenger import ChallengeClient
from primenet.validator.loop import ValidatorLoop
from primenet.validator.policy import RetryPolicy
from primenet.validator.routes import router
from primenet.validator.settings import ValidatorSettings
from primenet.validator.store import RedisLedger, ValidatorStore


def create_app(settings: ValidatorSettings, account: LocalAccount) -> FastAPI:
    """`account` holds VALIDATOR_ROLE; it signs requests to discovery and miners, and the validations."""
    deployment = Deployment.load(settings.deployment_file)
    client_redis = connect(settings.redis_url)
    ledger_redis = redis.Redis.from_url(settings.redis_url, socket_timeout=5.0)  # used from verify's worker thread
    network = Network.connect(settings.rpc_url, deployment)
    discovery = DiscoveryReader(
        settings.discovery_url, account, chain_id=deployment.chain_id, audience=settings.discovery_audience
    )
    store = ValidatorStore(client_redis, prefix=settings.key_prefix, rejections_kept=settings.rejections_kept)
    ledger = RedisLedger(ledger_redis, prefix=settings.key_prefix)
    client = ChallengeClient.from_settings(account, settings, chain_id=deployment.chain_id, ledger=ledger)
    loop = ValidatorLoop(
        network=network,
        transactor=network.transactor(account),
        discovery=discovery,
        client=client,
        store=store,
        policy=RetryPolicy(
            max_attempts=settings.max_attempts,
            base_s=settings.retry_base_s,
            max_s=settings.retry_max_s,
            unreachable_base_s=settings.retry_unreachable_base_s,
            action=settings.failure_action,
        ),
        concurrency=settings.concurrency,
        feed_timeout_s=settings.feed_timeout_s,
        resync_interval_s=settings.resync_interval_s,
        tick_s=settings.tick_s,
        rechallenge_interval_s=settings.rechallenge_interval_s,
        rechallenge_jitter_s=settings.rechallenge_jitter_s,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            async with background(validator_loop=loop.run()) as tasks:
                app.state.loop_task = tasks["validator_loop"]
                yield
        finally:
            await discovery.aclose()
            await network.aclose()
            await client_redis.aclose()
            ledger_redis.close()

    app = service_app(
        title="primenet validator",
        max_body_bytes=settings.auth.max_body_bytes,
        lifespan=lifespan,
        metrics=settings.metrics_exposure(),
    )
    # Exactly what `primenet.validator.deps` and `primenet.core.admin.AdminOnly` read.
    app.state.loop = loop
    app.state.loop_task = None
    app.state.store = store
    app.state.admin_token = settings.admin_token
    app.include_router(router)
    return app
