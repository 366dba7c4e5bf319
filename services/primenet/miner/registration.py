"""Onboarding on chain (provider stake, whitelist wait, node added) and the way back out (leave, remove, reclaim).

Every step reads the chain before it writes, so running `register()` again after a crash at any point continues
where it stopped and never stakes twice: a registered provider is not registered again, a stake that covers the
minimum is not topped up, a node that exists is not added again. A second run on a finished registration sends
no transaction at all.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog
from eth_account.signers.local import LocalAccount

from primenet.chain.contracts import Network, PoolStatus
from primenet.chain.rpc import checksum
from primenet.chain.tx import read
from primenet.core.errors import PrimenetError

log = structlog.get_logger(__name__)
TOKEN = 10**18

Progress = Callable[[str], None]


class RegistrationError(PrimenetError, RuntimeError):
    """Onboarding cannot go on without the operator (wrong key pairing, no funds, pool closed, timeout)."""


def tokens(amount: int) -> str:
    """Base units as decimal tokens, e.g. 1.5 (AI and ETH both have 18 decimals)."""
    whole, frac = divmod(amount, TOKEN)
    return f"{whole}.{frac:018d}".rstrip("0").rstrip(".")


def _log_progress(message: str) -> None:
    log.info(message)


@dataclass
class Outcome:
    """What a run did: each step with "done" or "skipped" (already so on chain), and the transactions sent."""

    steps: list[tuple[str, str]] = field(default_factory=list)
    transactions: int = 0

    def done(self, step: str) -> None:
        self.steps.append((step, "done"))
        self.transactions += 1

    def skipped(self, step: str) -> None:
        self.steps.append((step, "skipped"))


class Registrar:
    """The provider's and node's chain operations for one node in one pool."""

    def __init__(
        self,
        network: Network,
        *,
        provider: LocalAccount,
        node: LocalAccount,
        pool_id: int,
        progress: Progress = _log_progress,
        poll_s: float = 10.0,
        whitelist_timeout_s: float = 0.0,
    ) -> None:
        self.network = network
        self.provider = provider
        self.node = node
        self.pool_id = pool_id
        self.progress = progress
        self.poll_s = poll_s
        self.whitelist_timeout_s = whitelist_timeout_s
        self.tx = network.transactor(provider)

    async def register(self, compute_units: int) -> Outcome:
        """Provider registered with enough stake, whitelisted, node added: whatever is missing, in that order."""
        outcome = Outcome()
        await self.network.check_chain()
        await self._wait_pool_active()
        node = await self.network.node(self.node.address)
        if node is not None and node.provider.lower() != self.provider.address.lower():
            raise RegistrationError(
                f"node {self.node.address} is registered under provider {node.provider}, not {self.provider.address}:"
                " use that provider's key, or remove the node there first"
            )
        # An existing node's units are already in the provider's total; a new one adds `compute_units`.
        extra_units = 0 if node is not None else compute_units
        needed = await self.network.minimum_stake(self.provider.address, extra_units)
        info = await self.network.provider(self.provider.address)
        if not info.is_registered:
            await self._check_funds(max(needed, 1))
            self.progress(f"registering provider {self.provider.address} with a stake of {tokens(needed)} AI")
            await self.network.register_provider(self.tx, needed)
            outcome.done("register provider")
        else:
            outcome.skipped("register provider")
            if info.stake < needed:
                short = needed - info.stake
                await self._check_funds(short)
                self.progress(f"stake {tokens(info.stake)} AI < {tokens(needed)} AI needed: adding {tokens(short)} AI")
                await self.network.increase_stake(self.tx, short)
                outcome.done("increase stake")
            else:
                outcome.skipped("increase stake")
        if not info.is_whitelisted:
            await self._wait_whitelisted()
        if node is None:
            self.progress(f"adding node {self.node.address} ({compute_units} compute units)")
            await self.network.add_node(self.tx, self.node, compute_units=compute_units)
            outcome.done("add node")
        else:
            outcome.skipped("add node")
        return outcome

    async def _wait_pool_active(self) -> None:
        announced = False
        while True:
            pool = await self.network.pool(self.pool_id)
            if pool.status is PoolStatus.ACTIVE:
                return
            if pool.status is PoolStatus.COMPLETED:
                raise RegistrationError(f"pool {self.pool_id} ({pool.name}) has ended: choose another pool")
            if not announced:
                self.progress(f"pool {self.pool_id} is not started yet; waiting (checking every {self.poll_s:g} s)")
                announced = True
            await asyncio.sleep(self.poll_s)

    async def _check_funds(self, amount: int) -> None:
        balance = await self.network.balance(self.provider.address)
        if balance < amount:
            raise RegistrationError(
                f"provider {self.provider.address} holds {tokens(balance)} AI but the stake needs {tokens(amount)} AI"
            )
        if await self.network.w3.eth.get_balance(self.provider.address) == 0:
            raise RegistrationError(f"provider {self.provider.address} has no ETH to pay for gas")

    async def _wait_whitelisted(self) -> None:
        started = time.monotonic()
        self.progress(
            f"waiting for provider {self.provider.address} to be whitelisted by the network "
            f"(checking every {self.poll_s:g} s)"
        )
        while True:
            info = await self.network.provider(self.provider.address)
            if info.is_whitelisted:
                self.progress("provider whitelisted")
                return
            waited = time.monotonic() - started
            if self.whitelist_timeout_s and waited >= self.whitelist_timeout_s:
                raise RegistrationError(f"provider not whitelisted after {waited:.0f} s; run again to keep waiting")
            await asyncio.sleep(self.poll_s)
            self.progress(f"still waiting for the whitelist ({time.monotonic() - started:.0f} s)")

    # --- the way out -------------------------------------------------------------------------------

    async def deregister(self) -> Outcome:
        """Leave the pool (if in one), remove the node (if on chain), reclaim the reclaimable stake (if any)."""
        outcome = Outcome()
        await self.network.check_chain()
        node = await self.network.node(self.node.address)
        if node is not None and node.provider.lower() != self.provider.address.lower():
            raise RegistrationError(f"node {self.node.address} belongs to provider {node.provider}, not this one")
        pool_id = await self.network.node_pool(self.node.address) if node is not None else None
        if pool_id is not None:
            self.progress(f"leaving pool {pool_id}")
            await self.network.leave_pool(self.tx, pool_id, self.node.address)
            outcome.done("leave pool")
        else:
            outcome.skipped("leave pool")
        if node is not None:
            self.progress(f"removing node {self.node.address}")
            await self.network.remove_node(self.tx, self.provider.address, self.node.address)
            outcome.done("remove node")
        else:
            outcome.skipped("remove node")
        reclaimable = await self.reclaimable()
        if reclaimable > 0:
            self.progress(f"reclaiming {tokens(reclaimable)} AI of stake (withdrawable after the unbonding period)")
            await self.network.reclaim_stake(self.tx, reclaimable)
            outcome.done("reclaim stake")
        else:
            outcome.skipped("reclaim stake")
        return outcome

    async def reclaimable(self) -> int:
        if not (await self.network.provider(self.provider.address)).is_registered:
            return 0
        value: int = await read(self.network.prime.functions.getReclaimableStake(checksum(self.provider.address)))
        return value


async def balances(network: Network, provider: str) -> dict[str, int]:
    """The provider's ETH, AI balance, stake, reclaimable and withdrawable amounts (base units)."""
    info = await network.provider(provider)
    reclaimable = 0
    if info.is_registered:
        reclaimable = int(await read(network.prime.functions.getReclaimableStake(checksum(provider))))
    return {
        "eth": int(await network.w3.eth.get_balance(checksum(provider))),
        "ai": await network.balance(provider),
        "stake": info.stake,
        "reclaimable": reclaimable,
        "withdrawable": await network.withdrawable(provider),
    }
