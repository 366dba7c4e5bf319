"""Faults of the store, the chain and the feeds on the whole network of processes (`primenet devnet up`).

One devnet for the module (its faults heal, so each test leaves it whole): the validator killed during the node's
onboarding challenge, Redis killed with SIGKILL, discovery restarted between registrations, Anvil restarted with
its state and then unreachable for a minute. Each test checks that nothing acknowledged is lost and that every
service answers a JSON 503 (never a 500) while the part it needs is down. docs/faults.md says what each proves.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from binding import bind_listed_specs
from primenet.chain.contracts import Network
from primenet.chain.deployment import Deployment
from primenet.core.auth import RequestSigner
from primenet.core.models import ComputeSpecs, NodeRecord
from primenet.devnet.accounts import role_account
from primenet.devnet.processes import cmdline_of, free_port

PRIMENET = str(Path(sys.executable).with_name("primenet"))
REPO = Path(__file__).resolve().parents[2]
PORTS = ("ANVIL", "REDIS", "DISCOVERY", "ORCHESTRATOR", "MINER", "VALIDATOR")
HEARTBEAT_S = 2.0
NODE = role_account("node").address.lower()
VALIDATED_TOPIC = "0x" + Web3.keccak(text="ComputeNodeValidated(address,address)").hex().removeprefix("0x")
SPECS = ComputeSpecs(cpu_model="simulated", cpu_cores=2, ram_mib=4096, storage_path="/tmp", storage_free_gb=10.0)
# A challenge large enough to take a while on a CPU, so the validator can be killed while the miner computes it.
CHALLENGE_N = 2048


@dataclass
class Net:
    """The module's devnet: its environment, the buyer's (admin) environment and what the fixture saw."""

    env: dict[str, str]
    buyer: dict[str, str]
    state_dir: Path
    killed_validator: list[int] = field(default_factory=list)

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.env[f'PRIMENET_DEVNET_{service.upper()}_PORT']}"

    def processes(self) -> dict[str, Any]:
        processes: dict[str, Any] = json.loads((self.state_dir / "devnet.json").read_text())["processes"]
        return processes

    def log(self, service: str) -> str:
        return (self.state_dir / f"{service}.log").read_text(errors="replace")


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PRIMENET, *args], env=env, capture_output=True, text=True, timeout=300, check=False)


def wait_for(what: str, probe: Callable[[], Any], timeout_s: float = 90.0, every_s: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (found := probe()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(every_s)
    return found


def challenges_seen(net: Net) -> int:
    return net.log("miner").count("challenge received")


def validator_pid(port: str) -> int | None:
    """The validator process serving on `port` (the state file is written only once `up` is done)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        cmdline = cmdline_of(int(entry.name)) or []
        if cmdline[-2:] != ["validator", "run"]:
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"PRIMENET_PORT={port}".encode() in environ:
            return int(entry.name)
    return None


def kill_validator_on_first_challenge(net: Net, stop: threading.Event) -> None:
    """SIGKILL the validator as soon as the miner logs its first challenge (while it computes round 1)."""
    log = net.state_dir / "miner.log"
    while not stop.is_set():
        if log.exists() and "challenge received" in log.read_text(errors="replace"):
            pid = validator_pid(net.env["PRIMENET_DEVNET_VALIDATOR_PORT"])
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
                net.killed_validator.append(pid)
            return
        time.sleep(0.02)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    subprocess.run(["/bin/bash", str(REPO / "scripts/build-task-image.sh")], check=True, capture_output=True)
    state_dir = tmp_path_factory.mktemp("faults") / "devnet"
    env = {
        **os.environ,
        "PRIMENET_DEVNET_STATE_DIR": str(state_dir),
        **{f"PRIMENET_DEVNET_{name}_PORT": str(free_port()) for name in PORTS},
        "PRIMENET_DEVNET_SERVICES": "true",
        "PRIMENET_DEVNET_HEARTBEAT_INTERVAL_S": str(HEARTBEAT_S),
        # Unhealthy soon (the faults show in the listings), Dead only well after the longest outage here (a minute
        # of chain): a node that beats again after a fault stays in the pool with its task.
        "PRIMENET_UNHEALTHY_AFTER_S": "10",
        "PRIMENET_DEAD_AFTER_S": "120",
        "PRIMENET_CHALLENGE_N": str(CHALLENGE_N),
        # The validator's GET /rejections (the orchestrator gets the devnet's own token in its environment).
        "PRIMENET_ADMIN_TOKEN": secrets.token_urlsafe(24),
    }
    net = Net(env=env, buyer={}, state_dir=state_dir)
    stop = threading.Event()
    watcher = threading.Thread(target=kill_validator_on_first_challenge, args=(net, stop), daemon=True)
    watcher.start()
    try:
        up = run(env, "devnet", "up", "--json")
        assert up.returncode == 0, up.stderr[-3000:]
        token = (state_dir / "admin.token").read_text().strip()
        net.buyer = {**env, "PRIMENET_ORCHESTRATOR_URL": net.url("orchestrator"), "PRIMENET_ADMIN_TOKEN": token}
        yield net
    finally:
        stop.set()
        run(env, "devnet", "down")


def admin(net: Net) -> dict[str, str]:
    """The orchestrator's admin header."""
    return {"Authorization": f"Bearer {net.buyer['PRIMENET_ADMIN_TOKEN']}"}


def validator_admin(net: Net) -> dict[str, str]:
    return {"Authorization": f"Bearer {net.env['PRIMENET_ADMIN_TOKEN']}"}


def node_view(net: Net) -> dict[str, Any]:
    nodes = json.loads(run(net.buyer, "nodes", "ls", "--json").stdout)["nodes"]
    return {n["address"]: n for n in nodes}


def validations_on_chain(net: Net, node: str) -> int:
    topic = "0x" + node.lower().removeprefix("0x").rjust(64, "0")
    query = {"fromBlock": "0x0", "toBlock": "latest", "topics": [VALIDATED_TOPIC, None, topic]}
    reply = httpx.post(net.url("anvil"), json={"jsonrpc": "2.0", "id": 1, "method": "eth_getLogs", "params": [query]})
    return len(reply.json()["result"])


def healthy_with_task(net: Net) -> dict[str, Any] | None:
    view = node_view(net).get(NODE)
    return view if view and view["status"] == "healthy" and view["task_state"] == "running" else None


def task_container(client: docker.DockerClient) -> Any:
    (container,) = [
        c
        for c in client.containers.list(all=True, filters={"label": "primenet.node"}, ignore_removed=True)
        if c.labels.get("primenet.node", "").lower() == NODE
    ]
    return container


def beats_after(net: Net, moment: float) -> bool:
    view = node_view(net)[NODE]
    return view["status"] == "healthy" and (view["last_heartbeat"] or 0) > moment + HEARTBEAT_S


def test_validator_killed_during_a_challenge_challenges_the_node_again_once(net: Net) -> None:
    # The fixture's watcher kills the validator while the miner computes the node's first challenge (during `up`,
    # or a few seconds later when the validator found the miner's API not yet serving and retries).
    wait_for("the miner's first challenge", lambda: net.killed_validator, timeout_s=60, every_s=0.1)
    assert len(net.killed_validator) == 1
    assert cmdline_of(net.killed_validator[0]) is None
    restarted = run(net.env, "devnet", "restart", "validator", "--json")
    assert restarted.returncode == 0, restarted.stderr[-3000:]
    assert json.loads(restarted.stdout)["was_running"] is False
    wait_for("the node to be validated on chain", lambda: validations_on_chain(net, NODE) > 0, timeout_s=120)
    wait_for("the node to be Healthy", lambda: node_view(net).get(NODE, {}).get("status") == "healthy")
    assert validations_on_chain(net, NODE) == 1
    assert challenges_seen(net) == 2  # the one the kill cut short, and exactly one after the restart


def test_redis_killed_loses_nothing_acknowledged_and_services_answer_503(net: Net) -> None:
    created = []
    for name in ("first", "second"):
        done = run(net.buyer, "tasks", "create", "--name", name, "--image", "local/primenet-busybox:1",
                   "--command", "sh -c 'echo up; sleep 3600'", "--json")  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        created.append(json.loads(done.stdout)["id"])
    wait_for("a task to run on the node", lambda: healthy_with_task(net), timeout_s=120)
    client = docker.from_env()
    container = task_container(client)
    tasks_before = json.loads(run(net.buyer, "tasks", "ls", "--json").stdout)["tasks"]
    assert sorted(t["id"] for t in tasks_before) == sorted(created)
    assigned_before = {t["id"]: sorted(t["assignments"]) for t in tasks_before}

    redis_pid = net.processes()["redis"]["pid"]
    os.kill(redis_pid, signal.SIGKILL)
    wait_for("redis to die", lambda: cmdline_of(redis_pid) is None, every_s=0.05)
    try:
        with httpx.Client(timeout=30) as http:
            answers = {
                "orchestrator GET /tasks": http.get(f"{net.url('orchestrator')}/tasks", headers=admin(net)),
                "orchestrator GET /nodes": http.get(f"{net.url('orchestrator')}/nodes", headers=admin(net)),
                "orchestrator POST /tasks": http.post(
                    f"{net.url('orchestrator')}/tasks",
                    headers=admin(net),
                    json={"name": "refused", "image": "local/primenet-busybox:1", "command": ["true"]},
                ),
                "validator GET /rejections": http.get(
                    f"{net.url('validator')}/rejections", headers=validator_admin(net)
                ),
            }
            signer = RequestSigner(role_account("validator"), audience="discovery", chain_id=31337)
            answers["discovery GET /api/validator"] = http.get(f"{net.url('discovery')}/api/validator", auth=signer)
            for service in ("discovery", "orchestrator", "validator", "miner"):
                answers[f"{service} GET /health"] = http.get(f"{net.url(service)}/health")
        for route, answer in answers.items():
            assert answer.status_code in (200, 503), f"{route}: {answer.status_code} {answer.text}"
            assert answer.headers["content-type"].startswith("application/json"), route
        for route in ("orchestrator GET /tasks", "orchestrator POST /tasks", "discovery GET /api/validator"):
            assert answers[route].status_code == 503, f"{route}: {answers[route].text}"
            assert answers[route].json()["error"]["code"] == "store_unavailable", route
    finally:
        restarted = run(net.env, "devnet", "restart", "redis", "--json")
        assert restarted.returncode == 0, restarted.stderr[-3000:]
    restarted_at = time.time()

    wait_for("heartbeats to reach the orchestrator again", lambda: beats_after(net, restarted_at))
    tasks_after = json.loads(run(net.buyer, "tasks", "ls", "--json").stdout)["tasks"]
    assert sorted(t["id"] for t in tasks_after) == sorted(created)  # and not the refused one
    assert {t["id"]: sorted(t["assignments"]) for t in tasks_after} == assigned_before
    assert healthy_with_task(net)
    container.reload()
    assert task_container(client).id == container.id
    assert container.status == "running"
    assert container.attrs["RestartCount"] == 0


async def _simulated_nodes(net: Net, count: int, *, validated: bool, first_ip: int) -> list[LocalAccount]:
    """Nodes added on chain under the devnet's provider, their records uploaded to discovery; `validated`: then
    bound to their specs and validated on chain, as the validator does after a passed challenge.

    Their API is a closed port: the validator's challenges and the orchestrator's invites fail, but both list them.
    """
    provider, nodes = role_account("provider"), []
    deployment = Deployment.load(net.state_dir / "deployment.json")
    async with Network.connect(net.url("anvil"), deployment) as network:
        needed = await network.minimum_stake(provider.address, count) - await network.stake_of(provider.address)
        if needed > 0:
            await network.increase_stake(network.transactor(provider), needed)
        for i in range(count):
            node = Account.create()
            await network.add_node(network.transactor(provider), node, compute_units=1)
            record = NodeRecord(
                node=node.address, provider=provider.address, ip=f"127.0.{first_ip + i}.1", port=9, pool_id=0,
                specs=SPECS,
            )  # fmt: skip
            signer = RequestSigner(node, audience="discovery", chain_id=31337)
            async with httpx.AsyncClient(base_url=net.url("discovery"), auth=signer, timeout=30) as http:
                put = await http.put("/api/nodes", json=record.model_dump(mode="json"))
            assert put.status_code == 200, put.text
            if validated:  # bound first, so the validator never finds it validated for other specs
                await bind_listed_specs(net.url("discovery"), node.address)
                validator = network.transactor(role_account("validator"))
                await network.validate_node(validator, provider.address, node.address)
            nodes.append(node)
    return nodes


def rejected_by_validator(net: Net) -> set[str]:
    reply = httpx.get(f"{net.url('validator')}/rejections", headers=validator_admin(net), params={"limit": 500})
    return {r["node"].lower() for r in reply.json()["rejections"]}


def test_discovery_restart_loses_no_node_for_the_feed_consumers(net: Net) -> None:
    before = asyncio.run(_simulated_nodes(net, 2, validated=True, first_ip=10))
    before += asyncio.run(_simulated_nodes(net, 2, validated=False, first_ip=20))
    restarted = run(net.env, "devnet", "restart", "discovery", "--kill", "--json")
    assert restarted.returncode == 0, restarted.stderr[-3000:]
    after = asyncio.run(_simulated_nodes(net, 2, validated=True, first_ip=30))
    after += asyncio.run(_simulated_nodes(net, 2, validated=False, first_ip=40))
    pooled = {n.address.lower() for n in (*before[:2], *after[:2])}
    unvalidated = {n.address.lower() for n in (*before[2:], *after[2:])}
    # The orchestrator's monitor stores every validated node of its pool; the validator challenges every other.
    wait_for("the orchestrator to list every pool node", lambda: pooled <= set(node_view(net)), timeout_s=60)
    wait_for("the validator to challenge every new node", lambda: unvalidated <= rejected_by_validator(net), 60)
    assert node_view(net)[NODE]["status"] == "healthy"


def chain_answers(net: Net) -> bool:
    try:
        reply = httpx.post(net.url("anvil"), json={"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber"}, timeout=1)
    except httpx.HTTPError:
        return False
    return reply.status_code == 200


def test_anvil_restarted_with_its_state_and_down_for_a_minute(net: Net) -> None:
    client = docker.from_env()
    container = task_container(client)
    deployment = json.loads((net.state_dir / "deployment.json").read_text())["contracts"]
    validations = validations_on_chain(net, NODE)

    # A clean restart: the chain comes back from its state file, the same blocks and contracts.
    block = int(httpx.post(net.url("anvil"), json={"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber"})
                .json()["result"], 16)  # fmt: skip
    restarted = run(net.env, "devnet", "restart", "anvil", "--json")
    assert restarted.returncode == 0, restarted.stderr[-3000:]
    answer = httpx.post(net.url("anvil"), json={"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber"})
    assert int(answer.json()["result"], 16) >= block
    for address in deployment.values():
        code = httpx.post(
            net.url("anvil"), json={"jsonrpc": "2.0", "id": 1, "method": "eth_getCode", "params": [address, "latest"]}
        )
        assert code.json()["result"] != "0x"
    assert validations_on_chain(net, NODE) == validations

    # A minute without a chain: stopped (its state dumped), started again from it 60 s later.
    anvil = net.processes()["anvil"]
    os.kill(anvil["pid"], signal.SIGTERM)
    wait_for("anvil to stop", lambda: cmdline_of(anvil["pid"]) is None, every_s=0.05)
    stopped_at = time.monotonic()
    try:
        assert not chain_answers(net)
        stranger = Account.create()  # a node the chain does not know: discovery must ask the chain about it
        record = NodeRecord(node=stranger.address, provider=role_account("provider").address, ip="127.0.99.1",
                            port=9, pool_id=0, specs=SPECS)  # fmt: skip
        signer = RequestSigner(stranger, audience="discovery", chain_id=31337)
        seen: dict[str, set[int]] = {}
        with httpx.Client(timeout=30) as http:
            while time.monotonic() - stopped_at < 60:
                answers = {
                    "discovery PUT /api/nodes": http.put(
                        f"{net.url('discovery')}/api/nodes", json=record.model_dump(mode="json"), auth=signer
                    ),
                    "orchestrator GET /nodes": http.get(f"{net.url('orchestrator')}/nodes", headers=admin(net)),
                    **{f"{s} GET /health": http.get(f"{net.url(s)}/health") for s in ("discovery", "orchestrator")},
                    **{f"{s} GET /health": http.get(f"{net.url(s)}/health") for s in ("validator", "miner")},
                }
                for route, reply in answers.items():
                    assert reply.status_code in (200, 503), f"{route}: {reply.status_code} {reply.text}"
                    seen.setdefault(route, set()).add(reply.status_code)
                put = answers["discovery PUT /api/nodes"]
                assert put.status_code == 503, put.text
                assert put.json()["error"]["code"] == "chain_unavailable"
                time.sleep(5)
        assert seen["orchestrator GET /nodes"] == {200}  # served from the store while the chain is away
    finally:
        started = run(net.env, "devnet", "restart", "anvil", "--json")
        assert started.returncode == 0, started.stderr[-3000:]
    back_at = time.time()
    assert validations_on_chain(net, NODE) == validations
    wait_for("heartbeats after the chain came back", lambda: beats_after(net, back_at))
    assert healthy_with_task(net)
    container.reload()
    assert task_container(client).id == container.id
    assert container.status == "running"
    # The node was never ejected: it is still in pool 0 on chain.
    chain = ["chain", "--rpc-url", net.url("anvil"), "--deployment", str(net.state_dir / "deployment.json")]
    assert json.loads(run(net.env, *chain, "node-info", NODE, "--json").stdout)["pool_id"] == 0
