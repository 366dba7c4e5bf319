"""The round-1 products a miner holds between the two rounds of a challenge, keyed by challenge id."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict

from primenet.core.errors import ApiError
from primenet.miner.solver import CommittedProduct


class ChallengeBook:
    """Round-1 products waiting for their reveal: bounded (each holds an n x n matrix) and expiring."""

    def __init__(self, *, capacity: int, ttl_s: float) -> None:
        self.capacity = capacity
        self.ttl_s = ttl_s
        self._entries: OrderedDict[str, tuple[float, CommittedProduct | None]] = OrderedDict()
        self.compute = asyncio.Semaphore(1)  # one matmul at a time: two would share the GPU and double the memory

    def reserve(self, challenge_id: str) -> None:
        self._expire()
        if challenge_id in self._entries:
            raise ApiError(409, "challenge_exists", "this challenge id was already answered")
        while len(self._entries) >= self.capacity:
            self._entries.popitem(last=False)  # the oldest challenge loses: its validator waited longest
        self._entries[challenge_id] = (time.monotonic() + self.ttl_s, None)

    def store(self, challenge_id: str, committed: CommittedProduct) -> None:
        if challenge_id in self._entries:
            self._entries[challenge_id] = (time.monotonic() + self.ttl_s, committed)

    def release(self, challenge_id: str) -> None:
        self._entries.pop(challenge_id, None)

    def take(self, challenge_id: str) -> CommittedProduct:
        self._expire()
        entry = self._entries.get(challenge_id)
        if entry is None or entry[1] is None:
            raise ApiError(404, "challenge_not_found", "no committed challenge with this id (unknown, expired or used)")
        del self._entries[challenge_id]  # single use: a second reveal for the same product is refused
        return entry[1]

    def _expire(self) -> None:
        now = time.monotonic()
        for key in [key for key, (expires, _) in self._entries.items() if expires <= now]:
            del self._entries[key]
