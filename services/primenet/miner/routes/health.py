"""GET /health: the node, its pool and orchestrator, and when a heartbeat was last answered."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from primenet.miner.deps import MinerDep

router = APIRouter(tags=["ops"])


@router.get("/health")
async def health(miner: MinerDep, response: Response) -> dict[str, Any]:
    """503 with status `publishing` while the API serves but the first upload to discovery is not done yet."""
    state = miner.memory.state
    if not miner.listed:
        response.status_code = 503
    return {
        "status": "ok" if miner.listed else "publishing",
        "node": miner.node,
        "pool_id": state.pool_id,
        "orchestrator_url": state.orchestrator_url,
        "last_heartbeat_reply_at": miner.heartbeat.last_reply_at,
        "heartbeat_replies_refused": miner.heartbeat.replies_refused,
        "orchestrator_hold": miner.heartbeat.held,
    }
