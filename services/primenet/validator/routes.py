"""The validator's small HTTP API for operators.

Routes:
    GET /health       the loop's last pass, the feed cursor, counts; 503 when the loop stopped; the feed's
                      error text only with the admin token
    GET /metrics      Prometheus: challenges by outcome and reason, validations sent, queue size
    GET /rejections   `Authorization: Bearer <admin token>`: recent rejected or failed challenges with figures
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from primenet.core.admin import AdminOnly
from primenet.core.health import FAILING, OK, STARTING, shown
from primenet.validator.deps import LoopDep, LoopTaskDep, StoreDep

router = APIRouter(tags=["ops"])


@router.get("/health")
async def health(request: Request, loop: LoopDep, task: LoopTaskDep) -> JSONResponse:
    """Anyone sees the state (`ok`, `degraded` when the feed is stale or its last read failed, `down`); the feed's
    error text only comes, under `details`, with the admin token (`core.health`)."""
    stats = loop.stats
    running = task is not None and not task.done()
    stale = stats.last_feed_at is None or loop.clock() - stats.last_feed_at > 2 * loop.feed_timeout_s + 30
    feed = FAILING if stats.feed_error is not None else (STARTING if stats.last_feed_at is None else OK)
    status = "down" if not running else ("degraded" if stale or feed == FAILING else "ok")
    public: dict[str, Any] = {
        "status": status,
        "validator": loop.transactor.address,  # the VALIDATOR_ROLE account that signs the validations
        "loops": {"feed": {"state": feed}},
        "last_run_at": stats.last_run_at,
        "last_feed_at": stats.last_feed_at,
        "last_resync_at": stats.last_resync_at,
        "feed_cursor": stats.cursor,
        "candidates": len(loop.candidates),
        "in_flight": len(loop.in_flight),
        "queued": loop.queued,
        "counts": stats.counts,
    }
    body = shown(request, public, {"feed_error": stats.feed_error})
    return JSONResponse(body, status_code=503 if status == "down" else 200)


@router.get("/rejections")
async def rejections(
    _: AdminOnly, store: StoreDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> dict[str, Any]:
    """The most recent challenges that did not pass (rejected or could not run), newest first."""
    recent = await store.rejections(limit)
    return {"rejections": [result.model_dump(mode="json") for result in recent], "count": len(recent)}
