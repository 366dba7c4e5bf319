"""Chain failures as Python exceptions that say what went wrong.

A revert carries ABI-encoded data: a custom error of one of our contracts (`InviteExpired(uint256,uint256)`),
`Error(string)` from `require`, or `Panic(uint256)`. `decode_revert` turns that data into a `ContractRevertError`
whose `error` is the Solidity name and `args` its named arguments, so callers match on names, not bytes.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from eth_abi.abi import decode
from eth_utils.abi import function_signature_to_4byte_selector

from primenet.chain.artifacts import CONTRACTS, abi_type, load_artifact
from primenet.chain.roles import role_name
from primenet.core.errors import PrimenetError, UpstreamUnavailableError

PANIC_REASONS = {
    0x01: "assertion failed",
    0x11: "arithmetic overflow or underflow",
    0x12: "division by zero",
    0x21: "invalid enum value",
    0x31: "pop from an empty array",
    0x32: "array index out of bounds",
    0x41: "out of memory",
    0x51: "call to an uninitialized function",
}


class ChainError(PrimenetError, RuntimeError):
    """Any failure talking to the chain (unreachable RPC, rejected or failed transaction)."""


class ChainUnavailableError(ChainError, UpstreamUnavailableError):
    """The RPC answered with something that is not a JSON-RPC reply (an HTML page from a gateway, a cut-off body):
    the chain is unreachable for now, as when the connection is refused."""


class ContractRevertError(ChainError):
    """A contract refused a call; `error` is the Solidity error name, `args` its named arguments."""

    def __init__(self, error: str, args: dict[str, Any], *, function: str | None = None) -> None:
        self.error = error
        self.args_by_name = args
        self.function = function
        shown = ", ".join(f"{key}={_show(value, key)}" for key, value in args.items())
        where = f"{function} reverted: " if function else "reverted: "
        super().__init__(f"{where}{error}({shown})")


def _show(value: Any, key: str = "") -> str:
    # A role argument (`neededRole` of AccessControlUnauthorizedAccount) reads better by name than as 32 bytes.
    if isinstance(value, bytes) and key.lower().endswith("role") and (name := role_name(value)) is not None:
        return name
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return repr(value) if isinstance(value, str) and not value.startswith("0x") else str(value)


@cache
def _known_errors() -> dict[bytes, tuple[str, list[str], list[str]]]:
    """4-byte selector -> (name, argument names, argument types), over every contract's ABI."""
    table: dict[bytes, tuple[str, list[str], list[str]]] = {
        function_signature_to_4byte_selector("Error(string)"): ("Error", ["message"], ["string"]),
        function_signature_to_4byte_selector("Panic(uint256)"): ("Panic", ["code"], ["uint256"]),
    }
    for contract in CONTRACTS:
        for entry in load_artifact(contract).abi:
            if entry.get("type") != "error":
                continue
            types = [abi_type(param) for param in entry["inputs"]]
            names = [param["name"] or f"arg{i}" for i, param in enumerate(entry["inputs"])]
            selector = function_signature_to_4byte_selector(f"{entry['name']}({','.join(types)})")
            table[selector] = (entry["name"], names, types)
    return table


def decode_revert(data: bytes | str | None, *, function: str | None = None) -> ContractRevertError:
    """The revert described by `data` (bytes or 0x-hex); unknown data is kept as hex, never dropped."""
    raw = bytes.fromhex(data[2:] if data.startswith("0x") else data) if isinstance(data, str) else (data or b"")
    if len(raw) < 4:
        return ContractRevertError("EmptyRevert", {}, function=function)
    known = _known_errors().get(raw[:4])
    if known is None:
        return ContractRevertError("UnknownError", {"data": raw}, function=function)
    name, names, types = known
    try:
        values = decode(types, raw[4:])
    except Exception:  # malformed payload: report the raw bytes rather than hide the revert
        return ContractRevertError(name, {"data": raw[4:]}, function=function)
    args = dict(zip(names, values, strict=True))
    if name == "Panic":
        args["reason"] = PANIC_REASONS.get(int(args["code"]), "unknown panic")
    return ContractRevertError(name, args, function=function)
