"""Sending transactions: one local nonce counter per account, receipt waiting, reverts decoded, no wedging.

Every transaction is estimated before it takes a nonce, so a call that would revert fails fast with its
decoded error and leaves the account's nonce sequence without a gap. Sends from one account are serialized
by a lock around nonce assignment only; waiting for receipts happens outside it, so many transactions of one
account can be in flight at once (`send_many`).

A transaction not mined within `replace_after_s` (its fee fell behind a rising base fee, or the node dropped it)
is signed again with the same nonce and fees raised by at least `FEE_BUMP` (what nodes require of a
replacement), up to `max_replacements` times; whichever version is mined is the receipt. A transaction that is
still not mined at `receipt_timeout_s`, or any refused send, leaves the nonce in doubt: the next send reads it
from the chain again instead of queueing every later transaction behind a gap.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import structlog
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from prometheus_client import Counter
from web3 import AsyncWeb3
from web3.contract.async_contract import AsyncContractFunction
from web3.exceptions import ContractLogicError, TransactionNotFound, Web3RPCError
from web3.types import Nonce, TxParams, TxReceipt, Wei

from primenet.chain.errors import ChainError, ContractRevertError, decode_revert
from primenet.chain.rpc import Web3

GAS_HEADROOM = 1.2  # estimates are exact for the current state; leave room for state that moves a little
FEE_BUMP = 1.125  # geth and anvil refuse a replacement that raises the fees by less than 10 %
RECEIPT_POLL_S = 0.05

log = structlog.get_logger(__name__)
REPLACED = Counter("primenet_chain_tx_replaced", "Transactions signed again with higher fees (not mined in time)")


@dataclass
class _InFlight:
    """A sent transaction and every version of it (same nonce, rising fees); the newest is last."""

    what: str
    tx: dict[str, Any]
    hashes: list[HexBytes] = field(default_factory=list)


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

    def __init__(
        self,
        w3: Web3,
        account: LocalAccount,
        *,
        receipt_timeout_s: float = 120.0,
        replace_after_s: float = 20.0,
        max_replacements: int = 4,
    ) -> None:
        self.w3 = w3
        self.account = account
        self.address = account.address
        self.receipt_timeout_s = receipt_timeout_s
        self.replace_after_s = replace_after_s
        self.max_replacements = max_replacements
        self._nonce: int | None = None
        self._chain_id: int | None = None
        self._lock = asyncio.Lock()
        self._in_flight: dict[HexBytes, _InFlight] = {}  # first hash -> the transaction, until its receipt

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
                tx = cast(dict[str, Any], await build(params.copy()))
                signed = self.account.sign_transaction(tx)
                try:
                    tx_hash = await self.w3.eth.send_raw_transaction(signed.raw_transaction)
                except Web3RPCError as exc:
                    self._nonce = None  # someone else used this account, or the node restarted: resync
                    if attempt == 1 and "nonce" in str(exc).lower():
                        continue
                    raise ChainError(f"{what}: the node refused the transaction: {exc}") from None
                self._nonce += 1
                self._in_flight[tx_hash] = _InFlight(what, tx, [tx_hash])
                return tx_hash
        raise AssertionError("unreachable")

    async def wait(self, tx_hash: HexBytes, what: str) -> TxReceipt:
        """The receipt of `tx_hash` or of a replacement of it; replaces it when it is not mined in time."""
        sent = self._in_flight.get(tx_hash) or _InFlight(what, {}, [tx_hash])
        try:
            receipt = await self._mined(sent)
        finally:
            self._in_flight.pop(tx_hash, None)
        if receipt is None:
            self._nonce = None  # the transaction may be gone from the node's pool: read the nonce again
            timeout = self.receipt_timeout_s
            raise ChainError(f"{what}: transaction {tx_hash.hex()} not mined within {timeout} s") from None
        if receipt["status"] != 1:
            raise await self._failure(receipt, what)
        return receipt

    async def _mined(self, sent: _InFlight) -> TxReceipt | None:
        start = time.monotonic()
        next_replacement = start + self.replace_after_s
        while True:
            for version in reversed(sent.hashes):
                try:
                    return await self.w3.eth.get_transaction_receipt(version)
                except TransactionNotFound:
                    continue
            now = time.monotonic()
            if now - start >= self.receipt_timeout_s:
                return None
            if now >= next_replacement and sent.tx and len(sent.hashes) <= self.max_replacements:
                await self._replace(sent)
                next_replacement = now + self.replace_after_s
            await asyncio.sleep(RECEIPT_POLL_S)

    async def _replace(self, sent: _InFlight) -> None:
        """Sign the transaction again with its nonce and fees raised enough to replace it (and to be mined now)."""
        quote = await self._fees()
        tip = max(math.ceil(sent.tx["maxPriorityFeePerGas"] * FEE_BUMP), int(quote["maxPriorityFeePerGas"]))
        cap = max(math.ceil(sent.tx["maxFeePerGas"] * FEE_BUMP), int(quote["maxFeePerGas"]), tip)
        tx = {**sent.tx, "maxPriorityFeePerGas": tip, "maxFeePerGas": cap}
        try:
            tx_hash = await self.w3.eth.send_raw_transaction(self.account.sign_transaction(tx).raw_transaction)
        except Web3RPCError as exc:  # e.g. "nonce too low": a version was mined meanwhile; the next poll finds it
            log.warning("transaction replacement refused", what=sent.what, nonce=tx["nonce"], error=str(exc))
            return
        REPLACED.inc()
        log.warning(
            "transaction not mined in time: replaced with higher fees",
            what=sent.what, nonce=tx["nonce"], max_fee=cap, tip=tip, replaces=sent.hashes[-1].hex(),
        )  # fmt: skip
        sent.tx = tx
        sent.hashes.append(tx_hash)

    async def _failure(self, receipt: TxReceipt, what: str) -> ChainError:
        """Why a mined transaction failed: replay it as a call at its block to get the revert data."""
        tx = await self.w3.eth.get_transaction(receipt["transactionHash"])
        replay: TxParams = {"from": tx["from"], "to": tx["to"], "data": tx["input"], "value": tx["value"]}
        try:
            await self.w3.eth.call(replay, block_identifier=receipt["blockNumber"])
        except ContractLogicError as exc:
            return revert_from(exc, what)
        return ChainError(f"{what}: transaction {receipt['transactionHash'].hex()} failed (out of gas?)")
