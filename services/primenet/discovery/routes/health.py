"""`GET /health`: Redis reachable, node count, and how fresh the chain sync is (503 when Redis is down)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from prometheus_client import Gauge

from primenet.discovery.deps import StoreDep, SyncDep

NODES = Gauge("primenet_discovery_nodes", "Nodes in the registry")
SYNC_AGE = Gauge("primenet_discovery_chain_sync_age_seconds", "Seconds since the last successful chain sync")

router = APIRouter(tags=["ops"])


@router.get("/health")
async def health(store: StoreDep, sync: SyncDep) -> JSONResponse:
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
