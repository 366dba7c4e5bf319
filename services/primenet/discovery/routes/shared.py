"""What several discovery routers share: refusals counted by error code, and the pool id's bounds."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path
from prometheus_client import Counter

from primenet.core.errors import ApiError

REFUSALS = Counter("primenet_discovery_refusals", "Node uploads refused, by error code", ["code"])

MAX_POOL_ID = 2**63
PoolId = Annotated[int, Path(ge=0, le=MAX_POOL_ID)]


def refuse(status: int, code: str, message: str, details: Any = None) -> ApiError:
    """The error to raise for a refused request, counted in `primenet_discovery_refusals{code}`."""
    REFUSALS.labels(code).inc()
    return ApiError(status, code, message, details=details)
