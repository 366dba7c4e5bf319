"""The cheap guards in front of signature recovery and chain lookups: the per-IP budget and the answer caches."""

from __future__ import annotations

import asyncio

import pytest

from primenet.core.auth import IpLimiter, cached, cached_members

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 1200.0  # the start of a 60 s window

    def __call__(self) -> float:
        return self.now


def test_each_ip_has_its_budget_per_window() -> None:
    clock = Clock()
    limiter = IpLimiter(limit=2, window_s=60, clock=clock)
    assert [limiter.check("192.0.2.1") for _ in range(3)] == [0, 0, 60]
    assert limiter.check("192.0.2.2") == 0  # another host is not affected
    clock.now += 45
    assert limiter.check("192.0.2.1") == 15  # refused until the window ends
    clock.now += 15
    assert limiter.check("192.0.2.1") == 0


def test_ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() -> None:
    limiter = IpLimiter(limit=1, window_s=60, clock=Clock())
    assert limiter.check("2001:db8:1:2::1") == 0
    assert limiter.check("2001:db8:1:2:ffff::9") > 0  # same /64: one host, however many addresses it uses
    assert limiter.check("2001:db8:1:3::1") == 0
    assert limiter.check("::ffff:192.0.2.7") == 0
    assert limiter.check("192.0.2.7") > 0
    assert IpLimiter.network_of(None) == "-"


def test_a_full_table_refuses_newcomers_and_keeps_counts() -> None:
    clock = Clock()
    limiter = IpLimiter(limit=5, window_s=60, clock=clock, max_clients=2)
    assert limiter.check("192.0.2.1") == 0
    assert limiter.check("192.0.2.2") == 0
    assert limiter.check("192.0.2.3") > 0  # no room: refused, and nobody's count was dropped to make room
    assert [limiter.check("192.0.2.1") for _ in range(5)] == [0, 0, 0, 0, 60]
    clock.now += 60
    assert limiter.check("192.0.2.3") == 0  # a new window starts with an empty table


def test_zero_turns_the_limit_off() -> None:
    limiter = IpLimiter(limit=0, window_s=60)
    assert all(limiter.check("192.0.2.1") == 0 for _ in range(1000))


class Lookup:
    """An authorizer that counts its calls: `allowed` are allowed; it can be made to fail or to wait."""

    def __init__(self, allowed: set[str]) -> None:
        self.allowed = allowed
        self.calls: list[str] = []
        self.fail = False
        self.gate: asyncio.Event | None = None

    async def __call__(self, address: str) -> bool:
        self.calls.append(address)
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise ConnectionError("chain down")
        return address in self.allowed


async def test_no_is_remembered_like_yes_until_its_ttl() -> None:
    clock, lookup = Clock(), Lookup({"0xa"})
    authorize = cached(lookup, 30, clock, refused_ttl_s=5)
    assert [await authorize(a) for a in ("0xa", "0xb", "0xa", "0xb", "0xb")] == [True, False, True, False, False]
    assert lookup.calls == ["0xa", "0xb"]
    clock.now += 6
    assert await authorize("0xb") is False  # "no" expired first: asked again
    assert await authorize("0xa") is True
    assert lookup.calls == ["0xa", "0xb", "0xb"]


async def test_a_flood_of_unknown_addresses_never_pushes_out_the_allowed() -> None:
    lookup = Lookup({"0xa"})
    authorize = cached(lookup, 30, Clock(), max_entries=10)
    assert await authorize("0xa") is True
    for i in range(100):
        assert await authorize(f"0x{i:04x}") is False
    assert await authorize("0xa") is True
    assert lookup.calls.count("0xa") == 1


async def test_concurrent_lookups_of_one_address_are_shared() -> None:
    lookup = Lookup(set())
    lookup.gate = asyncio.Event()
    authorize = cached(lookup, 30, Clock())
    waiting = [asyncio.create_task(authorize("0xb")) for _ in range(50)]
    await asyncio.sleep(0)
    lookup.gate.set()
    assert await asyncio.gather(*waiting) == [False] * 50
    assert lookup.calls == ["0xb"]


async def test_a_failed_lookup_is_not_remembered() -> None:
    lookup = Lookup({"0xa"})
    authorize = cached(lookup, 30, Clock())
    lookup.fail = True
    with pytest.raises(ConnectionError):
        await authorize("0xa")
    lookup.fail = False
    assert await authorize("0xa") is True
    assert lookup.calls == ["0xa", "0xa"]


async def test_members_are_read_whole_once_per_ttl() -> None:
    clock, loads = Clock(), []

    async def owners() -> tuple[str, str]:
        loads.append(clock.now)
        return "0xCreator", "0xManager"

    authorize = cached_members(owners, 30, clock)
    answers = await asyncio.gather(*(authorize(f"0x{i:04x}") for i in range(100)), authorize("0xmanager"))
    assert answers == [False] * 100 + [True]
    assert loads == [1200.0]  # a hundred distinct strangers, one read
    clock.now += 31
    assert await authorize("0xcreator") is True
    assert len(loads) == 2
