"""Several contract reads in one JSON-RPC batch, encoded with eth-abi directly.

web3.py's contract calls spend about 2 ms of Python per call matching ABIs and running formatters, several
times what the node takes to answer. Hot paths (discovery checks a node on every upload) use this instead:
selectors and types are worked out once per function, and all reads of one check travel in one HTTP request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import httpx
from eth_abi.abi import decode, encode
from eth_utils.abi import function_signature_to_4byte_selector

from primenet.chain.artifacts import abi_type, load_artifact
from primenet.chain.errors import ChainUnavailableError, ContractRevertError, decode_revert


@dataclass(frozen=True)
class ViewFunction:
    name: str
    selector: bytes
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]

    def encode(self, *args: Any) -> bytes:
        return self.selector + encode(list(self.inputs), list(args))

    def decode(self, data: bytes) -> tuple[Any, ...]:
        return tuple(decode(list(self.outputs), data))


@cache
def view_function(contract: str, name: str) -> ViewFunction:
    """The named function of a compiled contract (the first overload, our contracts have none)."""
    for entry in load_artifact(contract).abi:
        if entry.get("type") == "function" and entry["name"] == name:
            inputs = tuple(abi_type(p) for p in entry["inputs"])
            outputs = tuple(abi_type(p) for p in entry["outputs"])
            selector = function_signature_to_4byte_selector(f"{name}({','.join(inputs)})")
            return ViewFunction(name, selector, inputs, outputs)
    raise KeyError(f"{contract} has no function {name}")


@dataclass(frozen=True)
class Read:
    to: str
    function: ViewFunction
    args: tuple[Any, ...]


class BatchReader:
    def __init__(self, rpc_url: str, *, timeout_s: float = 30.0) -> None:
        self.rpc_url = rpc_url
        self._http = httpx.AsyncClient(timeout=timeout_s)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def read(self, reads: Sequence[Read]) -> list[tuple[Any, ...] | ContractRevertError]:
        """Each read's decoded outputs, or the decoded revert it met (a revert is an answer, not a failure)."""
        payload = [
            {
                "jsonrpc": "2.0",
                "id": i,
                "method": "eth_call",
                "params": [{"to": r.to, "data": "0x" + r.function.encode(*r.args).hex()}, "latest"],
            }
            for i, r in enumerate(reads)
        ]
        response = await self._http.post(self.rpc_url, json=payload)
        response.raise_for_status()
        try:
            replies = {reply["id"]: reply for reply in response.json()}
        except (ValueError, TypeError, KeyError):  # JSONDecodeError is a ValueError
            raise ChainUnavailableError("the chain RPC answered a batch with something other than replies") from None
        results: list[tuple[Any, ...] | ContractRevertError] = []
        for i, r in enumerate(reads):
            reply = replies.get(i)
            if reply is None:
                raise ChainUnavailableError(f"{r.function.name}: the RPC batch reply lacks an answer")
            if "error" in reply:
                data = reply["error"].get("data")
                if not isinstance(data, str) or not data.startswith("0x"):
                    # An error without revert data is the node's, not the contract's: its backend is down.
                    message = reply["error"].get("message", reply["error"])
                    raise ChainUnavailableError(f"{r.function.name}: {message}")
                results.append(decode_revert(data, function=r.function.name))
            else:
                results.append(r.function.decode(bytes.fromhex(reply["result"][2:])))
        return results
