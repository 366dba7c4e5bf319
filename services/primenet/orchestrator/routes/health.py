"""GET /health: each loop's last run and error, and whether Redis answers (503 while it does not)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from primenet.orchestrator.deps import OrchestratorDep, StoreDep

router = APIRouter(tags=["ops"])


@router.get("/health")
async def health(store: StoreDep, orchestrator: OrchestratorDep) -> JSONResponse:
    try:
        await store.redis.ping()
        redis_status = "ok"
    except Exception as exc:  # report, do not raise: /health must answer while Redis is down
        redis_status = f"{type(exc).__name__}: {exc}"
    loops = {
        name: {"last_run_at": stat.last_run_at, "last_error": stat.last_error, "last_error_at": stat.last_error_at}
        for name, stat in orchestrator.stats.loops.items()
    }
    ok = redis_status == "ok"
    body = {
        "status": "ok" if ok else "degraded",
        "redis": redis_status,
        "pool_id": orchestrator.settings.pool_id,
        "loops": loops,
    }
    return JSONResponse(body, status_code=200 if ok else 503)
