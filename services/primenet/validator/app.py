"""The validator process: the loop (`primenet.validator.loop`) plus a small HTTP API for operators.

Routes:
    GET /health       the loop's last pass, the feed cursor, counts; 503 when the loop stopped
    GET /metrics      Prometheus: challenges by outcome and reason, validations sent, queue size
    GET /rejections   `Authorization: Bearer <admin token>`: recent rejected or failed challenges with figures
"""

# No `from __future__ import annotations`: FastAPI must see the dependency objects as values.
import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import redis
from eth_account.signers.local import LocalAccount
from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse

from primenet.chain.contracts import Network
from primenet.chain.deployment import Deployment
from primenet.core.admin import bearer, require_admin
from primenet.core.app import background, service_app
from primenet.core.discovery_client import DiscoveryReader
from primenet.core.redisdb import connect
from primenet.validator.challenger import ChallengeClient
from primenet.validator.loop import ValidatorLoop
from primenet.validator.policy import RetryPolicy
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
            action=settings.failure_action,
        ),
        concurrency=settings.concurrency,
        feed_timeout_s=settings.feed_timeout_s,
        resync_interval_s=settings.resync_interval_s,
        tick_s=settings.tick_s,
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

    app = service_app(title="primenet validator", max_body_bytes=settings.auth.max_body_bytes, lifespan=lifespan)
    app.state.loop = loop
    app.state.store = store

    def admin(request: Request) -> None:
        require_admin(bearer(request), settings.admin_token)

    @app.get("/health", tags=["ops"])
    async def health() -> JSONResponse:
        task: asyncio.Task[None] | None = getattr(app.state, "loop_task", None)
        stats = loop.stats
        running = task is not None and not task.done()
        stale = stats.last_feed_at is None or loop.clock() - stats.last_feed_at > 2 * settings.feed_timeout_s + 30
        status = "down" if not running else ("degraded" if stale else "ok")
        body: dict[str, Any] = {
            "status": status,
            "validator": account.address,
            "last_run_at": stats.last_run_at,
            "last_feed_at": stats.last_feed_at,
            "last_resync_at": stats.last_resync_at,
            "feed_cursor": stats.cursor,
            "feed_error": stats.feed_error,
            "candidates": len(loop.candidates),
            "in_flight": len(loop.in_flight),
            "queued": loop.queued,
            "counts": stats.counts,
        }
        return JSONResponse(body, status_code=503 if status == "down" else 200)

    @app.get("/rejections", tags=["ops"], dependencies=[Depends(admin)])
    async def rejections(limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
        """The most recent challenges that did not pass (rejected or could not run), newest first."""
        recent = await store.rejections(limit)
        return {"rejections": [result.model_dump(mode="json") for result in recent], "count": len(recent)}

    return app
