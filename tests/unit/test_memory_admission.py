"""In-process nonce and rate admission (the miner's, which runs no Redis): same outcomes as the Redis script."""

from __future__ import annotations

import pytest

from primenet.core.auth import REPLAYED, STORE_FULL, MemoryAdmission


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def test_a_nonce_is_admitted_once_until_it_expires(clock: Clock) -> None:
    admission = MemoryAdmission(nonce_ttl_s=66, rate_limit=100, clock=clock)
    assert await admission.admit("n:a:1", "r:a:16") == 0
    assert await admission.admit("n:a:1", "r:a:16") == -1
    assert await admission.admit("n:b:1", "r:b:16") == 0  # another signer's nonce is its own
    clock.now += 67  # by then its timestamp is refused anyway, so forgetting it opens no replay
    assert await admission.admit("n:a:1", "r:a:17") == 0


async def test_rate_limit_per_window_does_not_burn_the_nonce(clock: Clock) -> None:
    admission = MemoryAdmission(nonce_ttl_s=66, rate_limit=2, clock=clock)
    assert [await admission.admit(f"n:a:{i}", "r:a:16") for i in range(3)] == [0, 0, 1]
    assert await admission.admit("n:a:2", "r:a:17") == 0  # next window: the throttled nonce is still fresh


async def test_a_full_store_refuses_new_nonces_and_forgets_none(clock: Clock) -> None:
    admission = MemoryAdmission(nonce_ttl_s=66, rate_limit=100, clock=clock, capacity=3)
    assert [await admission.admit(f"n:a:{i}", "r:a:16") for i in range(3)] == [0, 0, 0]
    assert await admission.admit("n:a:3", "r:a:16") == STORE_FULL  # refused, not admitted by evicting n:a:0
    assert await admission.admit("n:a:0", "r:a:16") == REPLAYED  # the oldest nonce is still known
    clock.now += 67  # expired nonces make room; their timestamps are refused by now anyway
    assert await admission.admit("n:a:3", "r:a:17") == 0
