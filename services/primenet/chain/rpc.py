"""The JSON-RPC connection every chain module shares."""

from __future__ import annotations

from eth_typing import ChecksumAddress
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.providers.async_base import AsyncBaseProvider

Web3 = AsyncWeb3[AsyncBaseProvider]


def connect(rpc_url: str, *, timeout_s: float = 30.0) -> Web3:
    return AsyncWeb3(AsyncHTTPProvider(rpc_url, request_kwargs={"timeout": timeout_s}))


def checksum(address: str) -> ChecksumAddress:
    return AsyncWeb3.to_checksum_address(address)
