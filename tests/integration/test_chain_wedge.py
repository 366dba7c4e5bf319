"""Transactions that cannot wedge an account, on a real Anvil of the test's own with automine off.

A background "block producer" mines a block every 0.2 s and, to play a fee market that moved away from the
transaction, sets a base fee above what the first version of a transaction offers. The service's Transactor must
replace it (same nonce, higher fees) and go on with the next transactions; and after a transaction it gave up on
was dropped by the node, the next one must not queue behind a nonce gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account

from primenet.chain.errors import ChainError
from primenet.chain.rpc import Web3, connect
from primenet.chain.tx import Transactor
from primenet.devnet.accounts import role_account
from primenet.devnet.local import find_anvil
from primenet.devnet.processes import free_port, spawn, wait_ready
from waiting import wait_for

pytestmark = pytest.mark.integration

HIGH_BASE_FEE = 500 * 10**9  # far above 2x the starting base fee (1 gwei) plus the tip


@pytest.fixture
def anvil_url(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log = tmp_path / "anvil.log"
    process = spawn([find_anvil(), "--host", "127.0.0.1", "--port", str(port)], log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(process, lambda: _answers(url), name="anvil", log_path=log, timeout_s=30)
        yield url
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)


def _answers(url: str) -> bool:
    try:
        return httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}, timeout=1).is_success
    except httpx.HTTPError:
        return False


async def rpc(w3: Web3, method: str, *params: Any) -> Any:
    reply = await w3.provider.make_request(method, list(params))  # type: ignore[arg-type]
    assert "error" not in reply, reply
    return reply.get("result")


@contextlib.asynccontextmanager
async def block_producer(w3: Web3, *, base_fee: int | None) -> AsyncIterator[None]:
    """Mine a block every 0.2 s (automine off); with `base_fee`, every block has that base fee."""

    async def produce() -> None:
        while True:
            if base_fee is not None:
                await rpc(w3, "anvil_setNextBlockBaseFeePerGas", hex(base_fee))
            await rpc(w3, "evm_mine")
            await asyncio.sleep(0.2)

    task = asyncio.create_task(produce())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def pending_count(w3: Web3, address: str) -> int:
    return await w3.eth.get_transaction_count(address, "pending") - await w3.eth.get_transaction_count(address)  # type: ignore[arg-type]


async def test_a_transaction_priced_out_is_replaced_and_the_next_ones_go_through(anvil_url: str) -> None:
    w3 = connect(anvil_url)
    sender, to = role_account("federator"), Account.create().address
    transactor = Transactor(w3, sender, replace_after_s=0.5, receipt_timeout_s=30)
    await rpc(w3, "evm_setAutomine", False)
    first = asyncio.create_task(transactor.transfer(to, 1))

    async def sent() -> bool:
        return await pending_count(w3, sender.address) > 0

    await wait_for(sent, "the first transfer in the node's pool", every_s=0.02)
    pool = await rpc(w3, "txpool_content")
    [original] = [tx for sender_txs in pool["pending"].values() for tx in sender_txs.values()]
    offered = int(original["maxFeePerGas"], 16)
    assert offered < HIGH_BASE_FEE  # as sent, it can never be mined under the base fee the producer sets

    async with block_producer(w3, base_fee=HIGH_BASE_FEE):
        receipt = await asyncio.wait_for(first, 20)
        later = [await asyncio.wait_for(transactor.transfer(to, 1), 20) for _ in range(2)]
    mined = await w3.eth.get_transaction(receipt["transactionHash"])
    assert mined["hash"].to_0x_hex() != original["hash"]  # the replacement was mined, not the original
    assert mined["maxFeePerGas"] > HIGH_BASE_FEE
    assert [r["status"] for r in (receipt, *later)] == [1, 1, 1]
    assert await w3.eth.get_transaction_count(sender.address) == mined["nonce"] + 3
    assert await w3.eth.get_balance(to) == 3  # one transfer per call: the replaced version never also landed
    await w3.provider.disconnect()  # type: ignore[attr-defined]


async def test_after_giving_up_on_a_dropped_transaction_the_nonce_is_read_again(anvil_url: str) -> None:
    w3 = connect(anvil_url)
    sender, to = role_account("federator"), Account.create().address
    transactor = Transactor(w3, sender, replace_after_s=60, receipt_timeout_s=1)
    await rpc(w3, "evm_setAutomine", False)
    with pytest.raises(ChainError, match="not mined within"):
        await transactor.transfer(to, 1)
    await rpc(w3, "anvil_dropAllTransactions")  # the node forgot it (a restart, a full pool)

    async with block_producer(w3, base_fee=None):
        transactor.receipt_timeout_s = 20
        receipt = await transactor.transfer(to, 2)
    assert receipt["status"] == 1
    assert (await w3.eth.get_transaction(receipt["transactionHash"]))["nonce"] == 0  # not 1, behind a gap
    assert await w3.eth.get_balance(to) == 2
    await w3.provider.disconnect()  # type: ignore[attr-defined]
