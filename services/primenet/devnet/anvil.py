"""Anvil-only RPC methods (time travel) for the devnet and the tests; never used against a real chain."""

from __future__ import annotations

from primenet.chain.rpc import Web3


async def advance_time(w3: Web3, seconds: int) -> None:
    """Move the chain clock forward and mine a block that carries the new time."""
    await w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
    await w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
