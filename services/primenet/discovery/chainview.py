"""What discovery asks the chain, with short caches where an answer may be a little old.

Node ownership is read fresh on every upload (it decides whether a record is accepted); role membership and
pool data are cached for `ttl_s`, so a role granted or revoked on chain takes effect within that time
without a restart.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from primenet.chain.batch import BatchReader, Read, view_function
from primenet.chain.contracts import Network, NodeInfo, PoolInfo
from primenet.chain.errors import ContractRevertError
from primenet.core.auth import cached

K = TypeVar("K")
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    def __init__(self, load: Callable[[K], Awaitable[V]], ttl_s: float, max_entries: int = 100_000) -> None:
        self._load = load
        self._ttl_s = ttl_s
        self._max = max_entries
        self._entries: dict[K, tuple[float, V]] = {}

    async def get(self, key: K) -> V:
        now = time.monotonic()
        hit = self._entries.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        value = await self._load(key)
        if len(self._entries) >= self._max:
            self._entries.clear()
        self._entries[key] = (now + self._ttl_s, value)
        return value


@dataclass(frozen=True)
class ChainFlags:
    validated: bool
    active: bool
    whitelisted: bool
    blacklisted: bool

    def as_dict(self) -> dict[str, bool]:
        return {
            "validated": self.validated,
            "active": self.active,
            "whitelisted": self.whitelisted,
            "blacklisted": self.blacklisted,
        }


NOT_ON_CHAIN = ChainFlags(validated=False, active=False, whitelisted=False, blacklisted=False)


class ChainView:
    def __init__(self, network: Network, reader: BatchReader, *, ttl_s: float) -> None:
        self.network = network
        self.reader = reader
        # Per address, "no" remembered as well as "yes", lookups shared: a stream of unknown signers costs one
        # chain call per address per TTL, and never pushes out the answers of the real validators.
        self._is_validator = cached(network.is_validator, ttl_s)
        self._pools: TtlCache[int, PoolInfo | None] = TtlCache(self._load_pool, ttl_s)

    async def _load_pool(self, pool_id: int) -> PoolInfo | None:
        try:
            return await self.network.pool(pool_id)
        except ContractRevertError as exc:
            if exc.error == "PoolNotFound":
                return None
            raise

    async def is_validator(self, address: str) -> bool:
        return await self._is_validator(address.lower())

    async def pool(self, pool_id: int) -> PoolInfo | None:
        return await self._pools.get(pool_id)

    async def is_pool_owner(self, pool_id: int, address: str) -> bool:
        pool = await self.pool(pool_id)
        return pool is not None and address.lower() in (pool.creator.lower(), pool.compute_manager.lower())

    async def stake_covers(self, provider: str) -> bool:
        """Whether the provider still holds stake, at least the minimum for the compute it has registered."""
        stake, required = await self.reader.read(
            [
                Read(self.network.stake_manager.address, view_function("StakeManager", "getStake"), (provider,)),
                Read(self.network.prime.address, view_function("PrimeNetwork", "calculateMinimumStake"), (provider, 0)),
            ]
        )
        if isinstance(stake, ContractRevertError):
            raise stake
        if isinstance(required, ContractRevertError):
            raise required
        return bool(stake[0] > 0 and stake[0] >= required[0])

    async def check(self, node: str, provider: str, pool_id: int) -> tuple[NodeInfo | None, ChainFlags]:
        """The node's on-chain record (None when unknown) and its flags, read in one RPC batch."""
        network = self.network
        record, whitelisted, blacklisted = await self.reader.read(
            [
                Read(network.registry.address, view_function("ComputeRegistry", "getNode"), (node,)),
                Read(network.registry.address, view_function("ComputeRegistry", "isProviderWhitelisted"), (provider,)),
                Read(network.pools.address, view_function("ComputePool", "isNodeBlacklistedFromPool"), (pool_id, node)),
            ]
        )
        if isinstance(record, ContractRevertError):
            if record.error != "UnknownNode":
                raise record
            return None, NOT_ON_CHAIN
        if isinstance(whitelisted, ContractRevertError):
            raise whitelisted
        if isinstance(blacklisted, ContractRevertError):
            raise blacklisted
        owner, address, specs_uri, units, active, validated = record[0]
        info = NodeInfo(
            node=address,
            provider=owner,
            specs_uri=specs_uri,
            compute_units=units,
            is_active=active,
            is_validated=validated,
        )
        return info, ChainFlags(validated, active, whitelisted=whitelisted[0], blacklisted=blacklisted[0])
