"""The store-lost hold (admin; `orchestrator.guard`): its state, and the operator's confirmation that ends it.

GET  /store             StoreState: `hold`, the marker (pool, time, how written) or since when the hold lasts
POST /store/confirm     writes the marker: the store is the pool's record from now on, so nodes without an
                        assignment in it lose their task; `ended` says whether a hold ended (idempotent)
"""

from __future__ import annotations

from fastapi import APIRouter

from primenet.core.admin import AdminOnly
from primenet.orchestrator.deps import GuardDep
from primenet.orchestrator.models import StoreConfirmed, StoreState

router = APIRouter(prefix="/store", tags=["store"])


@router.get("")
async def store_state(_: AdminOnly, guard: GuardDep) -> StoreState:
    return await guard.state()


@router.post("/confirm")
async def store_confirm(_: AdminOnly, guard: GuardDep) -> StoreConfirmed:
    ended = await guard.confirm()
    return StoreConfirmed(ended=ended, store=await guard.state())
