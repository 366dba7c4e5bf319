"""`primenet nodes|tasks|logs` run as a person runs them, against a real orchestrator on the session devnet.

The node is real on chain (added, validated and joined to pool 0 by the provider with the orchestrator's invite);
the orchestrator learns of it the way its monitor does (the discovery record stored through its own store, as
the monitor stores it), and the node's signed heartbeats make it Healthy and carry its task state.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account.signers.local import LocalAccount

from cells import row_heights
from primenet.chain.deployment import Deployment
from primenet.core.auth import RequestSigner, orchestrator_audience
from primenet.core.models import (
    ComputeSpecs,
    GpuDevice,
    Heartbeat,
    HeartbeatReply,
    NodeRecord,
    TaskState,
    specs_hash,
)
from primenet.core.redisdb import connect
from primenet.devnet.accounts import role_account
from primenet.devnet.local import DevnetState
from primenet.devnet.processes import free_port
from primenet.devnet.serve import serve_in_thread
from primenet.orchestrator.app import create_app
from primenet.orchestrator.settings import OrchestratorSettings
from primenet.orchestrator.store import OrchestratorStore

PRIMENET = str(Path(sys.executable).with_name("primenet"))
NewNode = Callable[..., Awaitable[LocalAccount]]  # the `new_node` fixture (tests/integration/conftest.py)
TOKEN = "buyer-cli-test-token-" + uuid.uuid4().hex


@pytest.fixture
def orchestrator(devnet: DevnetState) -> Iterator[tuple[str, str]]:
    """A real orchestrator (loops included) on its own key prefix; yields (url, prefix)."""
    prefix = "cli" + uuid.uuid4().hex[:8]
    settings = OrchestratorSettings(
        redis_url=devnet.redis_url,
        rpc_url=devnet.rpc_url,
        deployment_file=Path(devnet.deployment_file),
        admin_token=TOKEN,
        discovery_url=f"http://127.0.0.1:{free_port()}",  # nobody there: the monitor retries, nothing else needs it
        key_prefix=prefix,
        schedule_interval_s=0.5,
    )
    with serve_in_thread(create_app(settings, role_account("orchestrator")), port=free_port()) as url:
        yield url, prefix


@pytest.fixture
def env(orchestrator: tuple[str, str]) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("PRIMENET_")},
        "COLUMNS": "300",
        "PRIMENET_ORCHESTRATOR_URL": orchestrator[0],
        "PRIMENET_ADMIN_TOKEN": TOKEN,
    }


def primenet(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PRIMENET, *args], env=env, capture_output=True, text=True, timeout=60, check=False)


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


async def known_node(redis_url: str, prefix: str, node: LocalAccount, miner_port: int) -> None:
    """Store the node's discovery record as the orchestrator's monitor does when discovery lists it."""
    record = NodeRecord(
        node=node.address,
        provider=role_account("provider").address,
        ip="127.0.0.1",
        port=miner_port,
        pool_id=0,
        specs=ComputeSpecs(
            gpus=[GpuDevice(index=0, model="NVIDIA H100 80GB HBM3", memory_mib=81559)], cpu_cores=16, ram_mib=64_000
        ),
    )
    redis = connect(redis_url)
    try:
        await OrchestratorStore(redis, prefix=prefix).upsert_listed(
            record, listed_at=time.time(), now=time.time(), bound_specs_hash=specs_hash(record.specs)
        )
    finally:
        await redis.aclose()


async def beat(devnet: DevnetState, url: str, node: LocalAccount, **task: Any) -> HeartbeatReply:
    body = Heartbeat(address=node.address, version="test", timestamp=time.time(), **task)
    pools = Deployment.load(Path(devnet.deployment_file)).address("ComputePool")
    signer = RequestSigner(node, audience=orchestrator_audience(pools, 0), chain_id=31337)
    async with httpx.AsyncClient(base_url=url, auth=signer) as c:
        response = await c.post(
            "/heartbeat", content=body.model_dump_json(), headers={"content-type": "application/json"}
        )
    assert response.status_code == 200, response.text
    return HeartbeatReply.model_validate_json(response.content)


async def test_tasks_from_creation_to_removal(
    env: dict[str, str], orchestrator: tuple[str, str], devnet: DevnetState, new_node: NewNode
) -> None:
    url, prefix = orchestrator
    node = await new_node(join_pool=0)
    address = node.address.lower()
    miner_port = free_port()  # no miner listens: logs must fail as "could not run"
    await known_node(devnet.redis_url, prefix, node, miner_port)

    listed = as_json(primenet(env, "nodes", "ls", "--json"))
    assert [view["address"] for view in listed["nodes"]] == [address]
    assert listed["counts"]["discovered"] == 1

    assert (await beat(devnet, url, node)).assignment is None  # in the pool on chain: now Healthy
    shown = primenet(env, "nodes", "show", address)
    assert shown.returncode == 0, shown.stderr
    assert "healthy" in shown.stdout
    assert "1x NVIDIA H100 80GB HBM3" in shown.stdout
    assert f"127.0.0.1:{miner_port}" in shown.stdout

    created = primenet(
        env,
        "tasks", "create", "--name", "hello", "--image", "busybox:1.36",
        "--command", "sh -c 'echo hello; sleep 60'", "--env", "GREETING=hi there", "--env", "N=1",
        "--gpus", "1", "--nodes", "1", "--requirements", "gpu:model=H100",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert "task hello" in created.stdout
    assert "sh -c 'echo hello; sleep 60'" in created.stdout
    task = as_json(primenet(env, "tasks", "show", "hello", "--json"))
    assert task["command"] == ["sh", "-c", "echo hello; sleep 60"]
    assert task["env"] == {"GREETING": "hi there", "N": "1"}
    assert (task["gpus"], task["nodes"], task["requirements"]) == (1, 1, "gpu:model=H100")

    deadline = time.monotonic() + 15
    while (reply := await beat(devnet, url, node)).assignment is None:
        assert time.monotonic() < deadline, "the scheduler never assigned the task"
        await asyncio.sleep(0.2)
    assert reply.assignment is not None
    assert reply.assignment.task_id == task["id"]
    assert reply.assignment.command == ["sh", "-c", "echo hello; sleep 60"]
    await beat(
        devnet, url, node, task_id=task["id"], task_state=TaskState.RUNNING, task_details={"container_id": "c0ffee" * 8}
    )

    listing = primenet(env, "tasks", "ls")
    assert listing.returncode == 0, listing.stderr
    row = next(line for line in listing.stdout.splitlines() if task["id"] in line)
    assert "hello" in row
    assert "1 running" in row
    shown = primenet(env, "tasks", "show", task["id"])
    assert shown.returncode == 0, shown.stderr
    assert address in shown.stdout
    assert "container=c0ffeec0ffee" in shown.stdout
    nodes = primenet(env, "nodes", "ls")
    assert nodes.returncode == 0, nodes.stderr
    assert "1 healthy" in nodes.stdout
    row = next(line for line in nodes.stdout.splitlines() if address in line)
    assert task["id"] in row
    assert "running" in row

    again = primenet(env, "tasks", "create", "--name", "hello", "--image", "busybox:1.36")
    assert again.returncode == 1
    assert "task_name_taken" in again.stderr

    logs = primenet(env, "logs", address, "--tail", "5")
    assert logs.returncode == 2  # the orchestrator cannot reach the miner: 502, not a refusal
    assert "miner_unreachable" in logs.stderr

    removed = as_json(primenet(env, "tasks", "rm", "hello", "--json"))
    assert removed == {"deleted": task["id"]}
    assert (await beat(devnet, url, node)).assignment is None
    gone = primenet(env, "tasks", "show", task["id"])
    assert gone.returncode == 1
    assert "task_not_found" in gone.stderr
    assert as_json(primenet(env, "tasks", "ls", "--json")) == {"tasks": []}


async def test_listings_fit_80_columns_and_json_is_the_orchestrators(
    env: dict[str, str], orchestrator: tuple[str, str], devnet: DevnetState, new_node: NewNode
) -> None:
    url, prefix = orchestrator
    node = await new_node(join_pool=0)
    await known_node(devnet.redis_url, prefix, node, free_port())
    await beat(devnet, url, node)  # Healthy
    created = primenet(
        env,
        "tasks", "create", "--name", "llama-70b-pretraining-run-with-a-long-name",
        "--image", "ghcr.io/primeintellect/prime-training:2025.11.25-cuda12.4",
        "--command", "python -m train --config configs/llama-70b.toml --steps 100000", "--gpus", "1",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    task = as_json(primenet(env, "tasks", "show", "llama-70b-pretraining-run-with-a-long-name", "--json"))
    deadline = time.monotonic() + 15
    while (await beat(devnet, url, node)).assignment is None:
        assert time.monotonic() < deadline, "the scheduler never assigned the task"
        await asyncio.sleep(0.2)

    async def still_running() -> None:
        """A beat before each command: on a slow machine the commands outlast the node's Healthy window."""
        await beat(devnet, url, node, task_id=task["id"], task_state=TaskState.RESTARTING, task_details={"restarts": 3})

    narrow = {**env, "COLUMNS": "80"}
    printed = {}
    for args in (["nodes", "ls"], ["tasks", "ls"]):
        await still_running()
        shown = primenet(narrow, *args)
        assert shown.returncode == 0, shown.stderr
        assert max(len(line) for line in shown.stdout.splitlines()) <= 80, shown.stdout
        heights = row_heights(shown.stdout)
        assert [len(rows) for rows in heights] == [1], shown.stdout  # one table, one row: no first cell wrapped
        assert max(heights[0]) <= 2, shown.stdout
        printed[args[0]] = shown.stdout
    assert f"{node.address.lower()[:6]}…{node.address.lower()[-4:]}" in printed["nodes"]
    assert "restarting" in printed["nodes"]
    assert "1x H100 80GB HBM3" in printed["nodes"]
    assert "llama-70b-p…" in printed["tasks"]

    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        for args, path in (
            (["nodes", "ls"], "/nodes"),
            (["nodes", "show", node.address.lower()], f"/nodes/{node.address.lower()}"),
            (["tasks", "ls"], "/tasks"),
            (["tasks", "show", task["id"]], f"/tasks/{task['id']}"),
        ):
            await still_running()
            direct = await http.get(path)
            assert direct.status_code == 200, direct.text
            assert as_json(primenet(env, *args, "--json")) == direct.json(), args


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["nodes", "show", "0x" + "00" * 20], "node_not_found"),
        (["nodes", "show", "not-an-address"], "invalid_request"),
        (["tasks", "rm", "no-such-task"], "task_not_found"),
        (["tasks", "create", "--name", "bad name!", "--image", "busybox"], "invalid_request"),
        (
            ["tasks", "create", "--name", "r", "--image", "busybox", "--requirements", "gpu:colour=red"],
            "requirements_invalid",
        ),
    ],
)
def test_refusals_exit_1_with_the_error_code(env: dict[str, str], args: list[str], code: str) -> None:
    result = primenet(env, *args)
    assert result.returncode == 1, result.stdout + result.stderr
    assert code in result.stderr


def test_a_wrong_token_is_refused(env: dict[str, str], tmp_path: Path) -> None:
    token_file = tmp_path / "admin.token"
    token_file.write_text("not-the-admin-token-at-all")
    token_file.chmod(0o600)
    result = primenet({**env, "PRIMENET_ADMIN_TOKEN": ""}, "nodes", "ls", "--token-file", str(token_file))
    assert result.returncode == 1
    assert "admin_token_invalid" in result.stderr
    token_file.write_text(TOKEN)
    assert as_json(
        primenet({**env, "PRIMENET_ADMIN_TOKEN": ""}, "tasks", "ls", "--json", "--token-file", str(token_file))
    ) == {"tasks": []}


pytestmark = pytest.mark.integration
