"""GET /health: the node, its pool and orchestrator, and when a heartbeat was last answered."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from primenet.miner.deps import MinerDep

router = APIRouter(tags=["ops"])


@router.get("/health")
async def health(miner: MinerDep) -> dict[str, Any]:
    state = miner.memory.state
    return {
        "status": "ok",
        "node": miner.node,
        "pool_id": state.pool_id,
        "orchestrator_url": state.orchestrator_url,
        "last_heartbeat_reply_at": miner.heartbeat.last_reply_at,
        "heartbeat_replies_refused": miner.heartbeat.replies_refused,
        "orchestrator_hold": miner.heartbeat.held,
    }
