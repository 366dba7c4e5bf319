"""The coordinator's Pulumi program realised on the local dockerd, then a real miner joins it and runs a task.

`infra/coordinator/__main__.py` runs under Pulumi's mocks with `DockerRealiser`, which makes every container and
volume the program declares on the engine (host networking, loopback ports). A `primenet miner run` process then
registers against that coordinator: the validator container validates it, the orchestrator container invites it
and sees it Healthy, a task runs on it and its logs come back through the orchestrator. Destroying the stack
removes what it made and nothing else.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml

from images import ensure_images
from primenet.chain.contracts import Network
from primenet.chain.deployment import Deployment
from primenet.devnet.accounts import role_account
from primenet.devnet.processes import free_port, stop
from primenet.devnet.services import LaunchConfig, ServiceLauncher, remove_task_containers
from primenet.orchestrator.client import OrchestratorClient, RefusedError
from primenet.orchestrator.models import NodeStatus
from waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "infra" / "coordinator" / "tests"))

from harness import run_program  # noqa: E402  (the program's own test harness, beside it)
from realise import DockerRealiser  # noqa: E402

pytestmark = pytest.mark.integration

TASK_IMAGE = "local/primenet-busybox:1"
HEARTBEAT_S = 2.0


def stack_config(ports: dict[str, int], token: str) -> dict[str, Any]:
    """The dev stack's settings (Pulumi.dev.yaml) with free ports, quick timers and the two secrets set."""
    dev = yaml.safe_load((REPO / "infra" / "coordinator" / "Pulumi.dev.yaml").read_text())["config"]
    assert dev["primenet:bindAddress"] == "127.0.0.1"
    return {
        **dev,
        "primenet:ports": ports,
        "primenet:timers": {"heartbeatIntervalS": HEARTBEAT_S, "unhealthyAfterS": 30, "deadAfterS": 60},
        "primenet:redisPassword": secrets.token_hex(16),
        "primenet:adminToken": token,
    }


def stack_objects(client: docker.DockerClient) -> set[str]:
    containers = {f"container:{c.id}" for c in client.containers.list(all=True, ignore_removed=True)}
    return containers | {f"volume:{v.name}" for v in client.volumes.list()}


async def mint_provider_funds(rpc_url: str, deployment: Deployment) -> None:
    """The provider's stake, minted by the federator (the stack's deployer) as an operator would."""
    async with Network.connect(rpc_url, deployment) as network:
        await network.mint(network.transactor(role_account("federator")), role_account("provider").address, 10**21)


def test_a_miner_joins_the_realised_stack_and_runs_a_task(docker_client: docker.DockerClient, tmp_path: Path) -> None:
    ensure_images()
    ports = {part: free_port() for part in ("chain", "redis", "discovery", "orchestrator", "validator")}
    token = secrets.token_hex(24)
    before = stack_objects(docker_client)
    realiser = DockerRealiser(docker_client)
    started = time.monotonic()
    miner = None
    try:
        result = run_program(
            realiser, stack_config(ports, token), secret_keys=["primenet:redisPassword", "primenet:adminToken"]
        )
        realised_s = time.monotonic() - started
        outputs = result.outputs
        assert token not in json.dumps(outputs, default=str)
        deployment = Deployment.model_validate(outputs["deployment"])
        deployment_file = tmp_path / "deployment.json"
        deployment.save(deployment_file)

        rpc_url = f"http://127.0.0.1:{ports['chain']}"
        asyncio.run(mint_provider_funds(rpc_url, deployment))

        launcher = ServiceLauncher(
            LaunchConfig(
                host="127.0.0.1",
                ports={"discovery": ports["discovery"], "orchestrator": ports["orchestrator"], "miner": free_port()},
                rpc_url=rpc_url,
                redis_port=ports["redis"],
                deployment_file=str(deployment_file),
                heartbeat_interval_s=HEARTBEAT_S,
                pool_id=int(outputs["poolId"]),
            ),
            state_dir=tmp_path / "miner",
            timeout_s=60,
            progress=print,
        )
        miner = launcher.start_miner()
        node = role_account("node").address

        with OrchestratorClient(str(outputs["orchestratorUrl"]), token) as orchestrator:

            async def healthy() -> bool:
                return any(
                    n.address.lower() == node.lower() and n.status is NodeStatus.HEALTHY
                    for n in orchestrator.nodes().nodes
                )

            asyncio.run(
                wait_for(healthy, "the miner Healthy in the orchestrator container", timeout_s=120, every_s=0.5)
            )
            print(
                f"\nrealised in {realised_s:.1f} s; first Healthy node {time.monotonic() - started:.1f} s after start"
            )

            orchestrator.create_task(
                {"name": "hello", "image": TASK_IMAGE, "command": ["sh", "-c", "echo from-the-stack; sleep 60"]}
            )

            async def said_hello() -> bool:
                try:
                    logs = orchestrator.logs(node, tail=20).logs
                except RefusedError as exc:  # no_task until the assignment reached the miner and its container ran
                    if exc.code != "no_task":
                        raise
                    return False
                return "from-the-stack" in (logs if isinstance(logs, str) else "\n".join(logs))

            try:
                asyncio.run(
                    wait_for(said_hello, "the task's output through the orchestrator", timeout_s=120, every_s=1.0)
                )
            except AssertionError as exc:
                miner_log = Path(miner.log).read_text()[-3000:]
                raise AssertionError(f"{exc}\ntask: {orchestrator.task('hello')}\nminer log:\n{miner_log}") from None
    finally:
        if miner is not None:
            stop(miner)
        made = {f"{kind}:{ident}" for kind, ident in realiser.made}
        realiser.destroy()
        remove_task_containers(role_account("node").address)
    # Compared by identity, not as the engine's whole list: other work (a Molecule run) may use the engine meanwhile.
    after = stack_objects(docker_client)
    assert len(made) == 9  # the 6 containers and 3 volumes the program declares in anvil mode
    assert made.isdisjoint(after), "the stack left some of what it made"
    assert before <= after, "tearing the stack down removed something it had not made"
