"""Shared fixtures: one real devnet (Anvil + Redis on free loopback ports) for the whole test session."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from primenet.core.redisdb import connect
from primenet.devnet.local import Devnet, DevnetSettings, DevnetState
from primenet.devnet.processes import free_port

TIERS = ("unit", "integration", "e2e")

# Every test node runs on this machine and publishes a 127.0.0.x address, as on the devnet: the services' settings
# (built in-process here, or started as processes that inherit this environment) accept loopback nodes. The tests
# of the address policy itself pass `allow_loopback_nodes=False` explicitly.
os.environ["PRIMENET_ALLOW_LOOPBACK_NODES"] = "true"
# Our test engines run without a bridge network (dockerd --bridge=none --iptables=false): the miners built here
# (or started as processes) run their tasks with the explicit `host` policy. The isolation tests pass theirs.
os.environ["PRIMENET_TASK_NETWORK"] = "host"
# Every test's orchestrator starts on a new store (its own key prefix) for the session's shared pool 0, which has
# nodes on chain once any test joined one: the store-lost guard would hold them all. The guard's own tests turn it
# on explicitly (tests/integration/test_empty_store_guard.py).
os.environ["PRIMENET_STORE_GUARD"] = "false"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test by its folder (tests/unit, tests/integration, tests/e2e), so `-m unit` selects reliably.

    Tests outside tests/ (the Pulumi program's, beside it in infra/) carry their own markers."""
    root = Path(__file__).parent
    for item in items:
        if not item.path.is_relative_to(root):
            continue
        tier = item.path.relative_to(root).parts[0]
        if tier in TIERS:
            item.add_marker(tier)


@pytest.fixture(scope="session")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevnetState]:
    """Started by the same code as `primenet devnet up`, stopped at the end of the session."""
    settings = DevnetSettings(
        state_dir=tmp_path_factory.mktemp("devnet"), anvil_port=free_port(), redis_port=free_port(), services=False
    )
    network = Devnet(settings)
    state, _ = network.up()
    try:
        yield state
    finally:
        network.down()


@pytest.fixture(scope="session")
def redis_url(devnet: DevnetState) -> str:
    return devnet.redis_url


@pytest.fixture(scope="session")
def rpc_url(devnet: DevnetState) -> str:
    return devnet.rpc_url


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[Redis]:
    """A client on an emptied database: each test starts from a clean store."""
    client = connect(redis_url)
    await client.flushdb()
    try:
        yield client
    finally:
        await client.aclose()
