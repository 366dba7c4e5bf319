"""The JSON-RPC connection every chain module shares."""

from __future__ import annotations

import json
from typing import Any

from eth_typing import ChecksumAddress
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.providers.async_base import AsyncBaseProvider
from web3.types import RPCEndpoint, RPCResponse

from primenet.chain.errors import ChainUnavailableError

Web3 = AsyncWeb3[AsyncBaseProvider]


class _Provider(AsyncHTTPProvider):
    """web3's HTTP provider, with a reply that is not JSON (a gateway's HTML page) raised as `ChainUnavailableError`
    rather than a bare `JSONDecodeError` that no caller can tell from a bug."""

    async def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        try:
            return await super().make_request(method, params)
        except json.JSONDecodeError:
            raise ChainUnavailableError(f"the chain RPC answered {method} with something other than JSON") from None

    async def make_batch_request(self, batch_requests: list[tuple[RPCEndpoint, Any]]) -> Any:
        try:
            return await super().make_batch_request(batch_requests)
        except json.JSONDecodeError:
            raise ChainUnavailableError("the chain RPC answered a batch with something other than JSON") from None


def connect(rpc_url: str, *, timeout_s: float = 30.0) -> Web3:
    return AsyncWeb3(_Provider(rpc_url, request_kwargs={"timeout": timeout_s}))


def checksum(address: str) -> ChecksumAddress:
    return AsyncWeb3.to_checksum_address(address)
