"""The Solidity side: the committed artifacts are what the sources compile to, and the Foundry tests pass.

Both run the real toolchain from contracts/node_modules (solcjs, forge), offline.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

CONTRACTS = Path(__file__).resolve().parents[2] / "contracts"
ARTIFACTS = CONTRACTS / "artifacts"
BUILD = CONTRACTS / "tools" / "build-artifacts.js"
FORGE = CONTRACTS / "node_modules" / "@foundry-rs" / "forge-linux-amd64" / "bin" / "forge"
DEPLOYABLE = {"AIToken", "PrimeNetwork", "ComputeRegistry", "DomainRegistry", "StakeManager", "ComputePool"}


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH: run `make setup`")
    if not (CONTRACTS / "node_modules" / "solc").is_dir():
        pytest.fail("contracts/node_modules/solc is missing: run `make setup`")
    return node


def _run(args: list[str], timeout: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run(args, cwd=CONTRACTS, capture_output=True, text=True, timeout=timeout, env=env, check=False)


def test_committed_artifacts_match_a_fresh_compile(tmp_path: Path) -> None:
    fresh = tmp_path / "artifacts"
    built = _run([_node(), str(BUILD), "--out", str(fresh)], timeout=240)
    assert built.returncode == 0, f"build-artifacts failed:\n{built.stdout}\n{built.stderr}"

    committed_names = {p.name for p in ARTIFACTS.glob("*.json")}
    fresh_names = {p.name for p in fresh.glob("*.json")}
    problems: list[str] = []
    if missing := sorted(fresh_names - committed_names):
        problems.append(f"not committed: {missing}")
    if stale := sorted(committed_names - fresh_names):
        problems.append(f"committed but no longer built: {stale}")
    for name in sorted(fresh_names & committed_names):
        want = (fresh / name).read_text().splitlines(keepends=True)
        have = (ARTIFACTS / name).read_text().splitlines(keepends=True)
        if want != have:
            diff = difflib.unified_diff(have, want, f"committed/{name}", f"fresh/{name}", n=2)
            problems.append("".join(list(diff)[:40]))
    if problems:
        pytest.fail("contracts/artifacts is out of date; run `make contracts` and commit:\n" + "\n".join(problems))


def test_artifacts_have_the_shape_the_python_side_loads() -> None:
    names = {p.stem for p in ARTIFACTS.glob("*.json")} - {"errors"}
    assert names == DEPLOYABLE
    for name in DEPLOYABLE:
        data = json.loads((ARTIFACTS / f"{name}.json").read_text())
        assert set(data) == {"abi", "bytecode", "contractName"}
        assert data["contractName"] == name
        assert data["bytecode"].startswith("0x")
        assert len(data["bytecode"]) > 2
        assert any(entry["type"] == "constructor" for entry in data["abi"]) or name == "AIToken"
    errors = json.loads((ARTIFACTS / "errors.json").read_text())["errors"]
    names_in_table = {entry["name"] for entry in errors}
    # A few the services decode into messages; the table is the union of every contract's error ABI.
    assert {"StakeBelowMinimum", "InviteExpired", "InviteAlreadyUsed", "UnknownNode"} <= names_in_table
    assert {"AccessControlUnauthorizedAccount", "ERC20InsufficientAllowance"} <= names_in_table


def test_forge_test_passes() -> None:
    if not FORGE.is_file():
        pytest.fail(f"{FORGE} is missing: run `make setup`")
    _node()  # forge compiles through tools/solc, a node script
    result = _run([str(FORGE), "test", "--color", "never"], timeout=280)
    if result.returncode != 0:
        pytest.fail(f"forge test failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}")
    assert "0 failed" in result.stdout
