"""`primenet chain ...` run as a person runs it, against the session's devnet (deployed by `devnet up`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from primenet.chain.contracts import Network
from primenet.chain.deployment import Deployment
from primenet.devnet.accounts import role_account
from primenet.devnet.local import DevnetState

PRIMENET = str(Path(sys.executable).with_name("primenet"))
federator = role_account("federator")
orchestrator = role_account("orchestrator")


@pytest.fixture
def env(devnet: DevnetState, tmp_path: Path) -> dict[str, str]:
    key_file = tmp_path / "federator.key"
    key_file.write_text(federator.key.hex())
    key_file.chmod(0o600)
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("PRIMENET_")},
        "COLUMNS": "300",  # rich boxes usage errors; a wide terminal keeps each message on one line
        "PRIMENET_RPC_URL": devnet.rpc_url,
        "PRIMENET_DEPLOYMENT": devnet.deployment_file,
        "PRIMENET_KEY_FILE": str(key_file),
    }


def chain(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PRIMENET, "chain", *args], env=env, capture_output=True, text=True, timeout=120, check=False)


def as_json(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_deploy_again_reports_the_existing_deployment(env: dict[str, str]) -> None:
    recorded = json.loads(Path(env["PRIMENET_DEPLOYMENT"]).read_text())
    report = as_json(chain(env, "deploy", "--json"))
    assert report["deployed"] is False
    assert report["contracts"] == recorded["contracts"]


def test_fresh_deploy_writes_a_deployment_file(env: dict[str, str], tmp_path: Path) -> None:
    target = tmp_path / "deployments" / "local.json"
    report = as_json(chain({**env, "PRIMENET_DEPLOYMENT": str(target)}, "deploy", "--json"))
    assert report["deployed"] is True
    written = json.loads(target.read_text())
    assert written["contracts"] == report["contracts"]
    assert written["stake_minimum"] == 10**18  # `--stake-minimum` defaults to 1 AI
    assert set(written["contracts"]) == {
        "AIToken",
        "PrimeNetwork",
        "ComputeRegistry",
        "DomainRegistry",
        "StakeManager",
        "ComputePool",
    }


def test_admin_operations(env: dict[str, str]) -> None:
    someone = Account.create().address
    minted = as_json(chain(env, "mint", someone, "2.5", "--json"))
    assert minted["balance"] == 25 * 10**17

    domain = as_json(chain(env, "create-domain", "training", "--json"))["domain_id"]
    pool = as_json(
        chain(
            env,
            "create-pool",
            "--domain",
            str(domain),
            "--manager",
            orchestrator.address,
            "--name",
            "cli pool",
            "--requirements",
            "gpu:count>=1",
            "--json",
        )
    )["pool_id"]
    assert as_json(chain(env, "start-pool", str(pool), "--json"))["status"] == "ACTIVE"
    info = as_json(chain(env, "pool-info", str(pool), "--json"))
    assert (info["name"], info["data_uri"], info["compute_manager"], info["nodes"]) == (
        "cli pool",
        "gpu:count>=1",
        orchestrator.address,
        [],
    )
    try:
        assert as_json(chain(env, "set-min-stake", "2", "--json"))["stake_minimum"] == 2 * 10**18
    finally:  # the devnet is shared by the session: later tests expect its 1 AI per compute unit
        as_json(chain(env, "set-min-stake", "1", "--json"))
    funded = as_json(chain(env, "fund", someone, "0.25", "--json"))
    assert funded["balance_wei"] == 25 * 10**16


def test_a_revert_is_a_clear_message_and_exit_1(env: dict[str, str]) -> None:
    node = Account.create().address
    result = chain(env, "eject-node", "0", node)
    assert result.returncode == 1
    assert "ejectNode reverted: NodeNotInPool(poolId=0" in result.stderr
    unknown = chain(env, "node-info", node)
    assert unknown.returncode == 1
    assert "not registered on chain" in unknown.stderr


def test_key_problems_are_exit_2_and_never_echo_the_key(env: dict[str, str], tmp_path: Path) -> None:
    open_key = tmp_path / "open.key"
    open_key.write_text(federator.key.hex())
    open_key.chmod(0o644)
    result = chain({**env, "PRIMENET_KEY_FILE": str(open_key)}, "create-domain", "x")
    assert result.returncode == 2
    assert "chmod 600" in result.stderr
    assert federator.key.hex()[2:] not in result.stderr + result.stdout

    no_key = {k: v for k, v in env.items() if k != "PRIMENET_KEY_FILE"}
    result = chain(no_key, "create-domain", "x")
    assert result.returncode == 2
    assert "PRIMENET_PRIVATE_KEY" in result.stderr


def test_bad_arguments_and_unreachable_chain(env: dict[str, str]) -> None:
    bad_address = chain(env, "mint", "0x1234", "1")
    assert bad_address.returncode == 2
    assert "is not an Ethereum address" in bad_address.stderr
    bad_amount = chain(env, "mint", federator.address, "1e-30")
    assert bad_amount.returncode == 2
    assert "at most 18 decimals" in bad_amount.stderr
    unreachable = chain({**env, "PRIMENET_RPC_URL": "http://127.0.0.1:9"}, "pool-info", "0")
    assert unreachable.returncode == 2
    assert "cannot reach the chain at http://127.0.0.1:9" in unreachable.stderr


def test_bootstrap_makes_contracts_and_an_active_pool_once(env: dict[str, str], tmp_path: Path) -> None:
    target = tmp_path / "coordinator" / "deployment.json"
    boot_env = {**env, "PRIMENET_DEPLOYMENT": str(target)}
    validator = role_account("validator").address
    args = ("bootstrap", "--validator", validator, "--manager", orchestrator.address, "--pool-name", "boot", "--json")

    def last_line(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
        assert result.returncode == 0, result.stderr
        data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
        return data

    first = last_line(chain(boot_env, *args))
    assert (first["deployed"], first["pool_created"]) == (True, True)
    assert json.loads(target.read_text())["contracts"] == first["deployment"]["contracts"]
    assert first["deployment"]["validator"] == validator
    assert first["deployment"]["stake_minimum"] == 10**18  # the default: one AI per compute unit, in base units
    info = as_json(chain(boot_env, "pool-info", str(first["pool_id"]), "--json"))
    assert (info["status"], info["name"], info["compute_manager"]) == ("ACTIVE", "boot", orchestrator.address)

    again = last_line(chain(boot_env, *args))
    assert (again["deployed"], again["pool_created"]) == (False, False)
    assert (again["pool_id"], again["domain_id"]) == (first["pool_id"], first["domain_id"])
    assert again["deployment"]["contracts"] == first["deployment"]["contracts"]


def _key_file(tmp_path: Path, name: str, key: bytes) -> str:
    path = tmp_path / f"{name}.key"
    path.write_text(key.hex())
    path.chmod(0o600)
    return str(path)


async def test_slashing_commands_refuse_the_validator_key_and_a_slash_over_the_cap(
    env: dict[str, str], tmp_path: Path
) -> None:
    target = tmp_path / "slashing" / "deployment.json"
    fed_env = {**env, "PRIMENET_DEPLOYMENT": str(target)}
    assert as_json(chain(fed_env, "deploy", "--json"))["deployed"] is True
    info = as_json(chain(fed_env, "slash-info", "--json"))
    assert (info["treasury"], info["per_call"], info["slashers"]) == (None, 0, [])  # off until the federator acts

    slasher, treasury, victim = Account.create(), Account.create(), Account.create()
    as_json(chain(fed_env, "set-treasury", treasury.address, "--json"))
    limits = ("--per-call", "1", "--per-provider", "2", "--per-network", "5", "--period", "3600", "--json")
    assert as_json(chain(fed_env, "set-slash-limits", *limits))["per_call"] == 10**18
    assert as_json(chain(fed_env, "grant-slasher", slasher.address, "--json"))["slasher"] is True
    as_json(chain(fed_env, "fund", slasher.address, "1", "--json"))
    as_json(chain(fed_env, "fund", victim.address, "1", "--json"))
    as_json(chain(fed_env, "mint", victim.address, "10", "--json"))
    async with Network.connect(env["PRIMENET_RPC_URL"], Deployment.load(target)) as net:
        await net.register_provider(net.transactor(victim), 10 * 10**18)

    validator_env = {**fed_env, "PRIMENET_KEY_FILE": _key_file(tmp_path, "validator", role_account("validator").key)}
    refused = chain(validator_env, "slash", victim.address, "10", "--reason", "mine now")
    assert refused.returncode == 1
    assert "slash reverted: AccessControlUnauthorizedAccount(" in refused.stderr
    assert "neededRole=SLASHER_ROLE" in refused.stderr

    slasher_env = {**fed_env, "PRIMENET_KEY_FILE": _key_file(tmp_path, "slasher", slasher.key)}
    over = chain(slasher_env, "slash", victim.address, "1.5", "--reason", "too much at once")
    assert over.returncode == 1
    assert "SlashExceedsCallCap(amount=1500000000000000000, cap=1000000000000000000)" in over.stderr
    taken = as_json(chain(slasher_env, "slash", victim.address, "1", "--reason", "failed challenge", "--json"))
    assert (taken["slashed"], taken["treasury"], taken["allowance_left"]) == (10**18, treasury.address, 10**18)
    info = as_json(chain(fed_env, "slash-info", "--provider", victim.address, "--json"))
    assert (info["slashers"], info["allowance"]) == ([slasher.address], 10**18)
