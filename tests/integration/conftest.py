"""Chain fixtures on the session devnet (its deployment, a staked and whitelisted provider, fresh nodes) and the
Docker engine's client with the local task image."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from docker.errors import ImageNotFound
from eth_account import Account
from eth_account.signers.local import LocalAccount

from primenet.chain.contracts import Network
from primenet.chain.deployment import Deployment
from primenet.chain.eip712 import PoolInvite
from primenet.devnet.accounts import role_account
from primenet.devnet.local import DevnetState

TOKEN = 10**18
PROVIDER_STAKE = 20_000 * TOKEN

NewNode = Callable[..., Awaitable[LocalAccount]]
TASK_IMAGE_TAGS = ("local/primenet-busybox:1", "local/primenet-busybox:latest")
BUILD_SCRIPT = Path(__file__).parents[2] / "scripts" / "build-task-image.sh"


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    """The engine's client, with the local task image built on first use (CI starts from a fresh engine; the script
    keeps an existing image)."""
    client = docker.from_env()
    try:
        for tag in TASK_IMAGE_TAGS:
            client.images.get(tag)
    except ImageNotFound:
        subprocess.run([str(BUILD_SCRIPT)], check=True, capture_output=True, timeout=300)
    yield client
    client.close()


@pytest.fixture
async def network(devnet: DevnetState) -> AsyncIterator[Network]:
    """The devnet's contracts (deployed by `devnet up`: domain 0, pool 0 ACTIVE, manager = orchestrator)."""
    async with Network.connect(devnet.rpc_url, Deployment.load(Path(devnet.deployment_file))) as bound:
        yield bound


@pytest.fixture
async def provider(network: Network) -> LocalAccount:
    """The devnet provider, registered with a large stake and whitelisted (done once per devnet)."""
    account = role_account("provider")
    info = await network.provider(account.address)
    if not info.is_registered:
        await network.register_provider(network.transactor(account), PROVIDER_STAKE)
    if not info.is_whitelisted:
        await network.whitelist_provider(network.transactor(role_account("federator")), account.address)
    return account


@pytest.fixture
def new_node(network: Network, provider: LocalAccount) -> NewNode:
    """Adds a fresh node key on chain under the provider; optionally validates it and joins it to a pool."""

    async def add(*, compute_units: int = 1, validated: bool = False, join_pool: int | None = None) -> LocalAccount:
        node = Account.create()
        await network.add_node(network.transactor(provider), node, compute_units=compute_units)
        if validated or join_pool is not None:
            await network.validate_node(network.transactor(role_account("validator")), provider.address, node.address)
        if join_pool is not None:
            pool = await network.pool(join_pool)
            block = await network.w3.eth.get_block("latest")
            invite = PoolInvite(
                domain_id=pool.domain_id,
                pool_id=join_pool,
                node=node.address,
                nonce=int.from_bytes(Account.create().key[:16]),
                expiry=int(block["timestamp"]) + 3600,
            )
            signature = network.sign_invite(role_account("orchestrator"), invite)
            await network.join_pool(network.transactor(provider), invite, signature)
        return node

    return add
