"""The validator's Redis state: per-node attempt records, recent rejections, the challenge replay ledger.

Keys (prefix `val` by default; no KEYS scans):
  <prefix>:node:<address>   hash: rejections, failures, next_at, given_up, last_outcome, last_reason, last_at
  <prefix>:rejections       list of JSON results, newest first, trimmed to `rejections_kept`
  <prefix>:ledger:<id>      a claimed challenge id, expiring when any answer to it would be late anyway
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import cast

import redis
from pydantic import ValidationError
from redis.asyncio import Redis

from primenet.validator.challenger import ChallengeResult
from primenet.validator.policy import NodeState


class ValidatorStore:
    def __init__(self, redis: Redis, *, prefix: str = "val", rejections_kept: int = 500) -> None:
        self.redis = redis
        self.prefix = prefix
        self.rejections_kept = rejections_kept
        self.rejections_key = f"{prefix}:rejections"

    def node_key(self, node: str) -> str:
        return f"{self.prefix}:node:{node.lower()}"

    async def state(self, node: str) -> NodeState:
        raw = cast(dict[str, str], await self.redis.hgetall(self.node_key(node)))
        if not raw:
            return NodeState()
        return NodeState(
            rejections=int(raw.get("rejections", 0)),
            failures=int(raw.get("failures", 0)),
            next_at=float(raw.get("next_at", 0.0)),
            given_up=raw.get("given_up") == "1",
            last_outcome=raw.get("last_outcome", ""),
            last_reason=raw.get("last_reason", ""),
            last_at=float(raw.get("last_at", 0.0)),
        )

    async def save(self, node: str, state: NodeState) -> None:
        await self.redis.hset(self.node_key(node), mapping={key: _field(value) for key, value in asdict(state).items()})

    async def forget(self, node: str) -> None:
        """Clear a node's record, e.g. once it is validated, or by an operator to retry a node given up on."""
        await self.redis.delete(self.node_key(node))

    async def record_rejection(self, result: ChallengeResult) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.lpush(self.rejections_key, result.model_dump_json())
            pipe.ltrim(self.rejections_key, 0, self.rejections_kept - 1)
            await pipe.execute()

    async def rejections(self, limit: int) -> list[ChallengeResult]:
        raw = cast(list[str], await self.redis.lrange(self.rejections_key, 0, max(0, limit - 1)))
        # One entry that does not parse (written by an older version) is left out, not a 500 for the whole list.
        return [result for item in raw if (result := _read_result(item)) is not None]


def _read_result(text: str) -> ChallengeResult | None:
    try:
        return ChallengeResult.model_validate_json(text)
    except ValidationError:
        return None


def _field(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return repr(value) if isinstance(value, float) else str(value)  # repr: floats round-trip exactly


class RedisLedger:
    """`ChallengeLedger` on Redis (SET NX EX), shared by every validator process using this Redis.

    Synchronous on purpose: `verify` calls `claim` from the worker thread it runs in.
    """

    def __init__(self, client: redis.Redis, *, prefix: str = "val", clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.prefix = prefix
        self.clock = clock

    def claim(self, challenge_id: str, expires_at: float) -> bool:
        ttl = max(1, math.ceil(expires_at - self.clock()))
        return bool(self.client.set(f"{self.prefix}:ledger:{challenge_id}", "1", nx=True, ex=ttl))
