"""Miner onboarding against the real devnet chain and a real discovery: from a fresh provider to a published node.

The provider here is a fresh account (not the shared devnet provider), funded by the federator, so the whole path
runs: register with stake, wait for the whitelist (given by the test while the miner waits), add the node,
upload the record. A second run must send no transaction.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from typer.testing import CliRunner

from primenet.chain.contracts import Network
from primenet.chain.eip712 import PoolInvite
from primenet.cli.main import app
from primenet.core.auth import RequestSigner
from primenet.core.models import ComputeSpecs, GpuDevice
from primenet.devnet.accounts import role_account
from primenet.devnet.local import DevnetState
from primenet.devnet.processes import free_port
from primenet.devnet.serve import serve_in_thread
from primenet.discovery.app import create_app as create_discovery
from primenet.discovery.settings import DiscoverySettings
from primenet.miner.hardware import compute_units
from primenet.miner.onboarding import onboard
from primenet.miner.registration import Registrar, RegistrationError
from primenet.miner.settings import MinerKeys, MinerSettings

TOKEN = 10**18
SPECS = ComputeSpecs(
    gpus=[GpuDevice(index=0, model="NVIDIA H100 80GB HBM3", memory_mib=81559)],
    cpu_model="test cpu",
    cpu_cores=8,
    ram_mib=64_000,
    storage_path="/tmp/primenet",
    storage_free_gb=500.0,
)


@pytest.fixture
def discovery_url(devnet: DevnetState, request: pytest.FixtureRequest) -> Iterator[str]:
    prefix = "mr" + str(abs(hash(request.node.name)) % 10**9)
    settings = DiscoverySettings(
        redis_url=devnet.redis_url,
        rpc_url=devnet.rpc_url,
        deployment_file=Path(devnet.deployment_file),
        sync_interval_s=0.5,
        role_cache_s=0.5,
        key_prefix=prefix,
    )
    with serve_in_thread(create_discovery(settings), port=free_port()) as url:
        yield url


async def fresh_provider(network: Network, ai: int) -> LocalAccount:
    account: LocalAccount = Account.create()
    federator = network.transactor(role_account("federator"))
    await federator.transfer(account.address, 10 * TOKEN)
    await network.mint(federator, account.address, ai * TOKEN)
    return account


def miner_settings(devnet: DevnetState, discovery_url: str, tmp_path: Path) -> MinerSettings:
    return MinerSettings(
        rpc_url=devnet.rpc_url,
        deployment_file=Path(devnet.deployment_file),
        discovery_url=discovery_url,
        pool_id=0,
        storage_path=tmp_path / "storage",
        state_dir=tmp_path / "state",
        whitelist_poll_s=0.2,
    )


async def eventually(check: object, timeout_s: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await check():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.1)


async def test_registers_from_zero_then_a_second_run_sends_nothing(
    network: Network, devnet: DevnetState, discovery_url: str, tmp_path: Path
) -> None:
    provider = await fresh_provider(network, ai=5_000)
    node: LocalAccount = Account.create()
    settings = miner_settings(devnet, discovery_url, tmp_path)
    keys = MinerKeys(provider=provider, node=node)
    lines: list[str] = []

    run = asyncio.create_task(onboard(settings, keys, specs=SPECS, progress=lines.append))

    async def registered() -> bool:
        return (await network.provider(provider.address)).is_registered

    await eventually(registered)
    await asyncio.sleep(0.5)  # a few whitelist polls: the miner must wait, not add the node
    assert not run.done()
    assert await network.node(node.address) is None
    assert any("waiting for provider" in line for line in lines)
    await network.whitelist_provider(network.transactor(role_account("validator")), provider.address)
    outcome = await asyncio.wait_for(run, 60)

    assert dict(outcome.steps) == {"register provider": "done", "add node": "done"}
    units = compute_units(SPECS)
    info = await network.node(node.address)
    assert info is not None
    assert info.provider == provider.address
    assert info.compute_units == units
    stake = await network.stake_of(provider.address)
    assert stake == await network.minimum_stake(provider.address, 0) == units * TOKEN  # devnet: 1 AI per unit

    signer = RequestSigner(node, audience="discovery", chain_id=devnet.chain_id)
    async with httpx.AsyncClient(base_url=discovery_url, auth=signer) as client:
        response = await client.get(f"/api/nodes/{node.address}")
    assert response.status_code == 200, response.text
    record = response.json()
    assert record["provider"] == provider.address.lower()
    assert record["port"] == 8091
    assert record["ip"] == "127.0.0.1"

    # A restart after everything is done: reads only.
    nonce = await network.w3.eth.get_transaction_count(provider.address)
    again = await onboard(settings, keys, specs=SPECS, progress=lines.append)
    assert again.transactions == 0
    assert dict(again.steps) == {"register provider": "skipped", "increase stake": "skipped", "add node": "skipped"}
    assert await network.w3.eth.get_transaction_count(provider.address) == nonce
    assert await network.stake_of(provider.address) == stake
    assert (await network.provider(provider.address)).node_count == 1

    # A second node of the same provider: the stake is short by the new node's units and is topped up once.
    second: LocalAccount = Account.create()
    topped = await onboard(settings.model_copy(update={"port": 8092}), MinerKeys(provider, second), specs=SPECS)
    assert dict(topped.steps)["increase stake"] == "done"
    assert await network.stake_of(provider.address) == 2 * units * TOKEN


async def test_a_node_of_another_provider_is_refused(network: Network, new_node: object) -> None:
    stranger = await fresh_provider(network, ai=10)
    node = await new_node()  # type: ignore[operator]
    registrar = Registrar(network, provider=stranger, node=node, pool_id=0, poll_s=0.1)
    with pytest.raises(RegistrationError, match="registered under provider"):
        await registrar.register(1)


async def test_deregister_leaves_removes_and_reclaims_once(network: Network, devnet: DevnetState) -> None:
    provider = await fresh_provider(network, ai=100)
    node: LocalAccount = Account.create()
    registrar = Registrar(network, provider=provider, node=node, pool_id=0, poll_s=0.1)
    registered = asyncio.create_task(registrar.register(3))

    async def is_registered() -> bool:
        return (await network.provider(provider.address)).is_registered

    await eventually(is_registered)
    await network.whitelist_provider(network.transactor(role_account("validator")), provider.address)
    await asyncio.wait_for(registered, 30)
    assert await network.stake_of(provider.address) == 3 * TOKEN
    await network.validate_node(network.transactor(role_account("validator")), provider.address, node.address)
    block = await network.w3.eth.get_block("latest")
    invite = PoolInvite(domain_id=0, pool_id=0, node=node.address, nonce=secrets.randbits(64),
                        expiry=int(block["timestamp"]) + 600)  # fmt: skip
    await network.join_pool(
        network.transactor(provider), invite, network.sign_invite(role_account("orchestrator"), invite)
    )

    # Through the CLI (in a thread: it runs its own event loop).
    env = {"PRIMENET_PROVIDER_KEY": provider.key.hex(), "PRIMENET_NODE_KEY": node.key.hex(),
           "PRIMENET_RPC_URL": devnet.rpc_url, "PRIMENET_DEPLOYMENT_FILE": devnet.deployment_file}  # fmt: skip
    shown = await asyncio.to_thread(CliRunner().invoke, app, ["miner", "balance", "--json"], env=env)
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["stake"] == str(3 * TOKEN)

    out = await asyncio.to_thread(CliRunner().invoke, app, ["miner", "deregister", "--json"], env=env)
    assert out.exit_code == 0, out.output
    report = json.loads(out.stdout)
    assert report["steps"] == {"leave pool": "done", "remove node": "done", "reclaim stake": "done"}
    assert await network.node(node.address) is None
    assert await network.stake_of(provider.address) == 0
    again = await registrar.deregister()
    assert again.transactions == 0
