"""Sending transactions: one local nonce counter per account, receipt waiting, reverts decoded.

Every transaction is estimated before it takes a nonce, so a call that would revert fails fast with its
decoded error and leaves the account's nonce sequence without a gap. Sends from one account are serialized
by a lock around nonce assignment only; waiting for receipts happens outside it, so many transactions of one
account can be in flight at once (`send_many`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import AsyncWeb3
from web3.contract.async_contract import AsyncContractFunction
from web3.exceptions import ContractLogicError, TimeExhausted, Web3RPCError
from web3.types import Nonce, TxParams, TxReceipt, Wei

from primenet.chain.errors import ChainError, ContractRevertError, decode_revert
from primenet.chain.rpc import Web3

GAS_HEADROOM = 1.2  # estimates are exact for the current state; leave room for state that moves a little


def revert_from(exc: ContractLogicError, function: str | None) -> ContractRevertError:
    data = exc.data if isinstance(exc.data, str) else None
    if data and data.startswith("0x") and len(data) >= 10:
        return decode_revert(data, function=function)
    return ContractRevertError("Error", {"message": str(exc.message or exc)}, function=function)


async def read(call: AsyncContractFunction) -> Any:
    """An eth_call whose revert arrives as a decoded `ContractRevertError`."""
    try:
        return await call.call()
    except ContractLogicError as exc:
        raise revert_from(exc, call.fn_name) from None


class Transactor:
    """Signs and sends transactions from one account (its key never leaves this process)."""

    def __init__(self, w3: Web3, account: LocalAccount, *, receipt_timeout_s: float = 120.0) -> None:
        self.w3 = w3
        self.account = account
        self.address = account.address
        self.receipt_timeout_s = receipt_timeout_s
        self._nonce: int | None = None
        self._chain_id: int | None = None
        self._lock = asyncio.Lock()

    async def send(self, call: AsyncContractFunction, *, value: int = 0) -> TxReceipt:
        """Send a contract call and wait for its receipt; a revert raises `ContractRevertError`."""
        tx_hash = await self.submit(call, value=value)
        return await self.wait(tx_hash, call.fn_name)

    async def send_many(self, calls: Sequence[AsyncContractFunction]) -> list[TxReceipt]:
        """Estimate all calls concurrently, send them back to back (consecutive nonces, one fee quote), then
        wait for every receipt. Any call that would revert fails the batch before anything is sent."""
        estimates = await asyncio.gather(*(self._estimate(call, 0) for call in calls))
        fees = await self._fees()
        hashes = [
            await self._sign_and_send(call.build_transaction, {**params, **fees}, call.fn_name)
            for call, params in zip(calls, estimates, strict=True)
        ]
        return list(await asyncio.gather(*(self.wait(h, call.fn_name) for h, call in zip(hashes, calls, strict=True))))

    async def submit(self, call: AsyncContractFunction, *, value: int = 0) -> HexBytes:
        """Estimate, sign and send; returns the transaction hash without waiting for it to be mined."""
        params = await self._estimate(call, value)
        return await self._sign_and_send(call.build_transaction, {**params, **await self._fees()}, call.fn_name)

    async def _estimate(self, call: AsyncContractFunction, value: int) -> TxParams:
        params: TxParams = {"from": self.address, "value": Wei(value)}
        try:
            gas = await call.estimate_gas(params)
        except ContractLogicError as exc:
            raise revert_from(exc, call.fn_name) from None
        params["gas"] = int(gas * GAS_HEADROOM)
        return params

    async def _fees(self) -> TxParams:
        """EIP-1559 fee fields: the node's suggested tip plus twice the latest base fee (room for rises)."""
        if self._chain_id is None:
            self._chain_id = await self.w3.eth.chain_id
        tip = await self.w3.eth.max_priority_fee
        block = await self.w3.eth.get_block("latest")
        return {
            "chainId": self._chain_id,
            "maxPriorityFeePerGas": tip,
            "maxFeePerGas": Wei(2 * block.get("baseFeePerGas", 0) + tip),
        }

    async def transfer(self, to: str, value: int) -> TxReceipt:
        """Send ETH."""
        params: TxParams = {"from": self.address, "to": AsyncWeb3.to_checksum_address(to), "value": Wei(value)}
        params.update(await self._fees())
        params["gas"] = await self.w3.eth.estimate_gas(params)

        async def as_is(p: TxParams) -> TxParams:
            return p

        tx_hash = await self._sign_and_send(as_is, params, "transfer")
        return await self.wait(tx_hash, "transfer")

    async def deploy(self, abi: list[dict[str, Any]], bytecode: str, *args: Any) -> TxReceipt:
        """Deploy a contract; the receipt's `contractAddress` is its address."""
        factory = self.w3.eth.contract(abi=abi, bytecode=bytecode)
        constructor = factory.constructor(*args)
        params: TxParams = {"from": self.address}
        try:
            gas = await constructor.estimate_gas(params)
        except ContractLogicError as exc:
            raise revert_from(exc, "constructor") from None
        params["gas"] = int(gas * GAS_HEADROOM)
        params.update(await self._fees())
        tx_hash = await self._sign_and_send(constructor.build_transaction, params, "constructor")
        return await self.wait(tx_hash, "constructor")

    async def _sign_and_send(
        self, build: Callable[[TxParams], Awaitable[TxParams]], params: TxParams, what: str
    ) -> HexBytes:
        for attempt in (1, 2):
            async with self._lock:
                if self._nonce is None:
                    self._nonce = await self.w3.eth.get_transaction_count(self.address, "pending")
                params["nonce"] = Nonce(self._nonce)
                tx = await build(params.copy())
                signed = self.account.sign_transaction(cast(dict[str, Any], tx))
                try:
                    tx_hash = await self.w3.eth.send_raw_transaction(signed.raw_transaction)
                except Web3RPCError as exc:
                    self._nonce = None  # someone else used this account, or the node restarted: resync
                    if attempt == 1 and "nonce" in str(exc).lower():
                        continue
                    raise ChainError(f"{what}: the node refused the transaction: {exc}") from None
                self._nonce += 1
                return tx_hash
        raise AssertionError("unreachable")

    async def wait(self, tx_hash: HexBytes, what: str) -> TxReceipt:
        try:
            receipt = await self.w3.eth.wait_for_transaction_receipt(
                tx_hash, timeout=self.receipt_timeout_s, poll_latency=0.05
            )
        except TimeExhausted:
            timeout = self.receipt_timeout_s
            raise ChainError(f"{what}: transaction {tx_hash.hex()} not mined within {timeout} s") from None
        if receipt["status"] != 1:
            raise await self._failure(receipt, what)
        return receipt

    async def _failure(self, receipt: TxReceipt, what: str) -> ChainError:
        """Why a mined transaction failed: replay it as a call at its block to get the revert data."""
        tx = await self.w3.eth.get_transaction(receipt["transactionHash"])
        replay: TxParams = {"from": tx["from"], "to": tx["to"], "data": tx["input"], "value": tx["value"]}
        try:
            await self.w3.eth.call(replay, block_identifier=receipt["blockNumber"])
        except ContractLogicError as exc:
            return revert_from(exc, what)
        return ChainError(f"{what}: transaction {receipt['transactionHash'].hex()} failed (out of gas?)")
