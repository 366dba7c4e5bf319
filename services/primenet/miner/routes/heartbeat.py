"""POST /heartbeat/now: the orchestrator's nudge to beat at once."""

from __future__ import annotations

from fastapi import APIRouter

from primenet.miner.deps import MinerDep, PoolOwner

router = APIRouter(tags=["task"])


@router.post("/heartbeat/now", status_code=202)
async def heartbeat_now(miner: MinerDep, _: PoolOwner) -> dict[str, str]:
    """The orchestrator's hint that this node's assignment changed: beat at once instead of at the next interval.
    Only a hint: the assignment itself still comes in the (signed, authoritative) heartbeat reply."""
    miner.heartbeat.wake()
    return {"result": "beating"}
