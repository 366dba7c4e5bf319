"""Compiled contracts (ABI + bytecode) that `make contracts` writes to contracts/artifacts/.

Looked up next to this module first (where a wheel or an image puts them), then in the source tree.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

CONTRACTS = ("AIToken", "PrimeNetwork", "ComputeRegistry", "DomainRegistry", "StakeManager", "ComputePool")


@dataclass(frozen=True)
class Artifact:
    name: str
    abi: list[dict[str, Any]]
    bytecode: str


def artifacts_dir() -> Path:
    configured = os.environ.get("PRIMENET_ARTIFACTS_DIR")
    if configured:
        return Path(configured)
    packaged = Path(__file__).with_name("artifacts")
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[3] / "contracts" / "artifacts"


@cache
def load_artifact(name: str) -> Artifact:
    path = artifacts_dir() / f"{name}.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"no compiled contract {name} at {path}: run `make contracts`") from None
    return Artifact(name=name, abi=data["abi"], bytecode=data["bytecode"])


def abi_type(param: dict[str, Any]) -> str:
    """The canonical type of an ABI parameter, with tuples (structs) spelled out: `(address,uint256)[]`."""
    kind = str(param["type"])
    if kind.startswith("tuple"):
        return "(" + ",".join(abi_type(component) for component in param["components"]) + ")" + kind[5:]
    return kind
