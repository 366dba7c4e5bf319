"""The change feed (`GET /api/events`): a long-poll over discovery's Redis stream, for validators and pool owners."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from primenet.core.models import FeedPage
from primenet.discovery.deps import ChainViewDep, SignerOrAdmin, StoreDep
from primenet.discovery.routes.shared import MAX_POOL_ID, refuse

MAX_FEED_WAIT_S = 30

router = APIRouter(prefix="/api", tags=["feed"])


@router.get("/events")
async def events(
    caller: SignerOrAdmin,
    view: ChainViewDep,
    store: StoreDep,
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
