"""Discovery: the signed node registry. Miners publish how to reach them; validators and pool owners read it.

Routes (JSON; OpenAPI at /docs):
    PUT  /api/nodes              signed by the node key: register or update the node's record
    GET  /api/validator          signed by a VALIDATOR_ROLE holder: every node (+ feed cursor)
    GET  /api/pool/{pool_id}     signed by the pool's creator or compute manager: the pool's nodes (+ cursor)
    GET  /api/nodes/{address}    signed by that node, or `Authorization: Bearer <admin token>`
    GET  /api/events             change feed, long-poll: `?since=<cursor>&timeout=<s>[&pool_id=<id>]`
    GET  /health, GET /metrics
"""

# No `from __future__ import annotations`: the routes' dependencies are local objects that FastAPI must see
# as values, not as strings to resolve in module globals.
import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import aiohttp
import httpx
from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import Counter, Gauge

from primenet.chain.batch import BatchReader
from primenet.chain.contracts import Network
from primenet.chain.deployment import Deployment
from primenet.core.admin import bearer, require_admin
from primenet.core.app import background, service_app
from primenet.core.auth import RequestAuthenticator, Signer
from primenet.core.errors import ApiError, error_response
from primenet.core.models import ADDRESS_PATTERN, FeedPage, NodeRecord
from primenet.core.redisdb import connect
from primenet.core.requirements import RequirementsError, parse
from primenet.discovery.chainview import ChainView
from primenet.discovery.settings import DiscoverySettings
from primenet.discovery.store import ConflictError, DiscoveryStore
from primenet.discovery.sync import ChainSync

REGISTRATIONS = Counter("primenet_discovery_registrations", "Node uploads accepted, by result", ["result"])
REFUSALS = Counter("primenet_discovery_refusals", "Node uploads refused, by error code", ["code"])
NODES = Gauge("primenet_discovery_nodes", "Nodes in the registry")
SYNC_AGE = Gauge("primenet_discovery_chain_sync_age_seconds", "Seconds since the last successful chain sync")

MAX_POOL_ID = 2**63
MAX_FEED_WAIT_S = 30
PoolId = Annotated[int, Path(ge=0, le=MAX_POOL_ID)]
Address = Annotated[str, Path(pattern=ADDRESS_PATTERN)]


def refuse(status: int, code: str, message: str, details: Any = None) -> ApiError:
    REFUSALS.labels(code).inc()
    return ApiError(status, code, message, details=details)


LISTING_DOC: dict[int | str, dict[str, Any]] = {
    200: {"description": '`{"nodes": [node, ...], "count": n, "cursor": "<feed cursor>"}`'}
}


def listing(nodes: list[str], cursor: str) -> Response:
    """Joined from pre-serialized nodes (see DiscoveryStore.listing_json): no per-node model work."""
    body = f'{{"nodes":[{",".join(nodes)}],"count":{len(nodes)},"cursor":{json.dumps(cursor)}}}'
    return Response(body, media_type="application/json")


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

    app = service_app(title="primenet discovery", max_body_bytes=settings.auth.max_body_bytes, lifespan=lifespan)
    app.state.store = store
    app.state.sync = sync

    async def on_chain_down(_: Request, exc: Exception) -> JSONResponse:
        return error_response(
            ApiError(503, "chain_unavailable", f"the chain RPC is unreachable ({type(exc).__name__}); retry shortly")
        )

    app.add_exception_handler(aiohttp.ClientError, on_chain_down)
    app.add_exception_handler(httpx.HTTPError, on_chain_down)
    app.add_exception_handler(asyncio.TimeoutError, on_chain_down)

    common = {"redis": redis, "audience": settings.audience, "chain_id": deployment.chain_id, "policy": settings.auth}
    anyone = RequestAuthenticator(**common)  # type: ignore[arg-type]
    validators = RequestAuthenticator(**common, authorize=view.is_validator, key_prefix="auth-v")  # type: ignore[arg-type]

    def is_admin(request: Request) -> bool:
        token = bearer(request)
        if token is None:
            return False
        require_admin(token, settings.admin_token)
        return True

    async def signer_or_admin(request: Request) -> Signer | None:
        """None for the admin (bearer token); otherwise the proven signer of a signed request."""
        if is_admin(request):
            return None
        return await anyone(request)

    # --- writes ------------------------------------------------------------------------------------

    @app.put("/api/nodes", tags=["nodes"])
    async def put_node(record: NodeRecord, signer: Annotated[Signer, Depends(anyone)]) -> dict[str, Any]:
        """Register or update the signing node's record (checked against the chain and the pool)."""
        if signer.address != record.node:
            raise refuse(403, "signer_not_node", f"signed by {signer.address}, but the record is for {record.node}")
        pool = await view.pool(record.pool_id)
        if pool is None:
            raise refuse(422, "pool_not_found", f"pool {record.pool_id} does not exist on chain")
        info, flags = await view.check(record.node, record.provider, record.pool_id)
        if info is None:
            raise refuse(422, "node_not_on_chain", f"node {record.node} is not registered in the compute registry")
        if info.provider.lower() != record.provider:
            raise refuse(
                422, "provider_mismatch", f"node {record.node} belongs to {info.provider}, not {record.provider}"
            )
        try:
            requirements = parse(pool.data_uri)
        except RequirementsError as exc:
            raise refuse(
                422, "pool_requirements_invalid", f"pool {pool.pool_id} has unusable requirements: {exc}"
            ) from None
        unmet = requirements.unmet(record.specs)
        if unmet:
            raise refuse(422, "requirements_not_met", f"the node does not meet pool {pool.pool_id}'s needs", unmet)
        for _ in range(5):
            current = await store.get(record.node)
            if current is not None and current.active and _placement(current.record) != _placement(record):
                raise refuse(
                    409,
                    "node_active_in_pool",
                    "the node is active in a pool: its provider, address and pool cannot change until it leaves",
                )
            others = await store.active_on_ip(record.ip, excluding=record.node)
            if others >= settings.max_nodes_per_ip:
                raise refuse(
                    409,
                    "ip_limit_reached",
                    f"{record.ip} already has {others} active node(s) (at most {settings.max_nodes_per_ip})",
                )
            try:
                stored, result = await store.upsert(record, flags.as_dict(), expected=current)
            except ConflictError:
                continue  # a concurrent upload of this node won: re-read and re-check
            REGISTRATIONS.labels(result).inc()
            return {"result": result, "node": stored.public()}
        raise refuse(409, "concurrent_update", "the node was updated concurrently too often; retry")

    # --- reads -------------------------------------------------------------------------------------

    @app.get("/api/validator", tags=["nodes"], responses=LISTING_DOC)
    async def validator_listing(
        _: Annotated[Signer, Depends(validators)], validated: Annotated[bool | None, Query()] = None
    ) -> Response:
        """Every node, for validators (`?validated=false`: only those still to validate)."""
        cursor = await store.latest_cursor()
        return listing(await store.listing_json(validated=validated), cursor)

    @app.get("/api/pool/{pool_id}", tags=["nodes"], responses=LISTING_DOC)
    async def pool_listing(pool_id: PoolId, signer: Annotated[Signer, Depends(anyone)]) -> Response:
        """The nodes that named this pool, for its creator or compute manager."""
        if await view.pool(pool_id) is None:
            raise refuse(404, "pool_not_found", f"pool {pool_id} does not exist on chain")
        if not await view.is_pool_owner(pool_id, signer.address):
            raise refuse(403, "not_pool_owner", f"{signer.address} is neither creator nor manager of pool {pool_id}")
        cursor = await store.latest_cursor()
        return listing(await store.listing_json(pool_id=pool_id), cursor)

    @app.get("/api/nodes/{address}", tags=["nodes"])
    async def get_node(address: Address, caller: Annotated[Signer | None, Depends(signer_or_admin)]) -> dict[str, Any]:
        """One node's record, for the node itself or the admin."""
        if caller is not None and caller.address != address.lower():
            raise refuse(403, "not_this_node", "only the node itself (or the admin) may read this record")
        stored = await store.get(address)
        if stored is None:
            raise refuse(404, "node_not_found", f"no record for {address}")
        return stored.public()

    @app.get("/api/events", tags=["feed"])
    async def events(
        caller: Annotated[Signer | None, Depends(signer_or_admin)],
        since: Annotated[str, Query(pattern=r"^(now|0|\d{1,20}-\d{1,20})$")] = "now",
        wait_s: Annotated[float, Query(alias="timeout", ge=0, le=MAX_FEED_WAIT_S)] = 25.0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 500,
        pool_id: Annotated[int | None, Query(ge=0, le=MAX_POOL_ID)] = None,
    ) -> FeedPage:
        """Changes after `since` (exclusive): waits up to `timeout` seconds for the first one.

        Start with the `cursor` of a listing (or `since=now`), then pass each reply's `cursor` back. The feed
        lives in Redis, so a cursor stays valid across discovery restarts; `reset: true` means the cursor was
        older than the oldest kept event, and the client should list again.
        """
        if (
            caller is not None
            and not await view.is_validator(caller.address)
            and (pool_id is None or not await view.is_pool_owner(pool_id, caller.address))
        ):
            raise refuse(403, "feed_forbidden", "the feed is for validators, or pool owners with ?pool_id=<their pool>")
        try:
            return await store.read_feed(since, block_ms=int(wait_s * 1000), limit=limit, pool_id=pool_id)
        except ValueError as exc:
            raise refuse(400, "invalid_cursor", str(exc)) from None

    @app.get("/health", tags=["ops"])
    async def health() -> JSONResponse:
        try:
            count = await store.count()
            applied, _ = await store.sync_state()
        except Exception as exc:  # report, don't crash: health must answer when Redis is down
            return JSONResponse({"status": "down", "redis": f"unreachable: {type(exc).__name__}"}, status_code=503)
        chain = sync.health()
        NODES.set(count)
        if chain["age_s"] is not None:
            SYNC_AGE.set(chain["age_s"])
        status = "ok" if chain["fresh"] else "degraded"
        body = {"status": status, "redis": "ok", "nodes": count, "chain_sync": {**chain, "block": applied}}
        return JSONResponse(body)

    return app


def _placement(record: NodeRecord) -> tuple[str, str, int, int]:
    """What may not change while a node is active in a pool (its hardware specs may: free disk moves)."""
    return record.provider, record.ip, record.port, record.pool_id
