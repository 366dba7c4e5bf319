"""`GET /health`: Redis reachable, node count, and how fresh the chain sync is (503 when Redis is down); error text
only with the admin token."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from prometheus_client import Gauge

from primenet.core.health import FAILING, OK, STARTING, shown
from primenet.discovery.deps import StoreDep, SyncDep

NODES = Gauge("primenet_discovery_nodes", "Nodes in the registry")
SYNC_AGE = Gauge("primenet_discovery_chain_sync_age_seconds", "Seconds since the last successful chain sync")

router = APIRouter(tags=["ops"])


@router.get("/health")
async def health(request: Request, store: StoreDep, sync: SyncDep) -> JSONResponse:
    """Anyone sees the state (`ok`, or `degraded` when the chain sync is stale or its last pass failed); the sync's
    error text only comes, under `details`, with the admin token (`core.health`)."""
    try:
        count = await store.count()
        applied, _ = await store.sync_state()
    except Exception as exc:  # report, don't crash: health must answer when Redis is down
        body = shown(request, {"status": "down", "redis": "down"}, {"redis_error": f"{type(exc).__name__}: {exc}"})
        return JSONResponse(body, status_code=503)
    chain = sync.health()
    NODES.set(count)
    if chain["age_s"] is not None:
        SYNC_AGE.set(chain["age_s"])
    error = chain.pop("last_error")
    state = FAILING if error is not None else (OK if chain["last_success"] is not None else STARTING)
    status = "ok" if chain["fresh"] and state == OK else "degraded"
    public = {
        "status": status,
        "redis": "ok",
        "nodes": count,
        "loops": {"chain_sync": {"state": state}},
        "chain_sync": {**chain, "block": applied},
    }
    return JSONResponse(shown(request, public, {"chain_sync": {"last_error": error}}))
