"""GET /health: the state of each loop and of Redis (503 while Redis does not answer).

Anyone sees `status` (`ok`, or `degraded` when Redis is down, a loop's latest pass failed or the store-lost hold
lasts), `store` (`ok`, or `hold`: see `orchestrator.guard`) and each loop's state name and last run; error strings
only come, under `details`, with the admin token (`core.health`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from primenet.core.health import FAILING, OK, loop_state, overall, shown
from primenet.orchestrator.deps import OrchestratorDep, StoreDep

router = APIRouter(tags=["ops"])


@router.get("/health")
async def health(request: Request, store: StoreDep, orchestrator: OrchestratorDep) -> JSONResponse:
    redis_error: str | None = None
    hold = orchestrator.hold
    try:
        await store.redis.ping()
        hold = hold or (orchestrator.settings.store_guard and not await store.has_marker())
    except Exception as exc:  # report, do not raise: /health must answer while Redis is down
        redis_error = f"{type(exc).__name__}: {exc}"
    stats = orchestrator.stats.loops
    states = {
        name: loop_state(last_run_at=stat.last_run_at, last_error_at=stat.last_error_at) for name, stat in stats.items()
    }
    public: dict[str, Any] = {
        "status": overall({**states, "redis": FAILING if redis_error else OK, "store": FAILING if hold else OK}),
        "redis": "down" if redis_error else "ok",
        "store": "hold" if hold else "ok",
        "pool_id": orchestrator.settings.pool_id,
        "loops": {name: {"state": states[name], "last_run_at": stat.last_run_at} for name, stat in stats.items()},
    }
    details = {
        "redis_error": redis_error,
        "loops": {
            name: {"last_error": stat.last_error, "last_error_at": stat.last_error_at} for name, stat in stats.items()
        },
    }
    return JSONResponse(shown(request, public, details), status_code=503 if redis_error else 200)
