"""Faults of the work flow on the whole network of processes (`primenet devnet up` on free ports, one devnet for the
module): two tasks competing for the one miner, a task whose image does not exist, a miner whose disk is full, and
the orchestrator killed (SIGKILL) in the middle of an ejection round.

The miner's state directory (its state file and its tasks' data) is a small tmpfs mounted before `devnet up`, so
the disk-full test fills a real file system and the miner meets a real ENOSPC (we run as root; without the mount
that test is skipped). The ejection test comes last: it slows the chain (Anvil mines a block a second) while the
orchestrator ejects several dead nodes, kills it after the first ejection is on chain and restarts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

from primenet import __version__
from primenet.chain.contracts import Network
from primenet.chain.deployment import Deployment
from primenet.chain.eip712 import PoolInvite
from primenet.core.auth import AUTH_HEADER, orchestrator_audience, sign_request
from primenet.core.models import ComputeSpecs, Heartbeat, NodeRecord
from primenet.core.redisdb import connect
from primenet.devnet.accounts import role_account
from primenet.devnet.processes import free_port
from primenet.orchestrator.store import OrchestratorStore

PRIMENET = str(Path(sys.executable).with_name("primenet"))
REPO = Path(__file__).resolve().parents[2]
SERVICES = ("ANVIL", "REDIS", "DISCOVERY", "ORCHESTRATOR", "MINER", "VALIDATOR")
HEARTBEAT_S = 2.0
IMAGE = "local/primenet-busybox:1"
NODE = role_account("node").address.lower()
DEAD_NODES = 5


@pytest.fixture(scope="module")
def devnet_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, bool]]:
    """The devnet's state dir, with its miner's directory on a 4 MiB tmpfs of 200 inodes when we may mount one."""
    state_dir = tmp_path_factory.mktemp("faults") / "devnet"
    miner_dir = state_dir / "miner"
    miner_dir.mkdir(parents=True)
    mount = [shutil.which("mount") or "/bin/mount", "-t", "tmpfs", "-o", "size=4m,nr_inodes=200,mode=0700", "tmpfs"]
    mounted = (
        os.geteuid() == 0 and subprocess.run([*mount, str(miner_dir)], capture_output=True, check=False).returncode == 0
    )
    try:
        yield state_dir, mounted
    finally:
        if mounted:
            subprocess.run(
                [shutil.which("umount") or "/bin/umount", "-l", str(miner_dir)], capture_output=True, check=False
            )


@pytest.fixture(scope="module")
def env(devnet_dir: tuple[Path, bool]) -> Iterator[dict[str, str]]:
    subprocess.run(["/bin/bash", str(REPO / "scripts/build-task-image.sh")], check=True, capture_output=True)
    state_dir, _ = devnet_dir
    values = {
        **os.environ,
        "PRIMENET_DEVNET_STATE_DIR": str(state_dir),
        **{f"PRIMENET_DEVNET_{name}_PORT": str(free_port()) for name in SERVICES},
        "PRIMENET_DEVNET_SERVICES": "true",
        "PRIMENET_DEVNET_HEARTBEAT_INTERVAL_S": str(HEARTBEAT_S),
        # Dead nodes within the test; long enough for the real miner to ride out an orchestrator restart.
        "PRIMENET_UNHEALTHY_AFTER_S": "10",
        "PRIMENET_DEAD_AFTER_S": "20",
    }
    try:
        up = run(values, "devnet", "up", "--json")
        assert up.returncode == 0, up.stderr[-3000:]
        values["PRIMENET_ORCHESTRATOR_URL"] = f"http://127.0.0.1:{values['PRIMENET_DEVNET_ORCHESTRATOR_PORT']}"
        values["PRIMENET_ADMIN_TOKEN"] = (state_dir / "admin.token").read_text().strip()
        wait_node(values, NODE, "healthy")
        yield values
    finally:
        subprocess.run([PRIMENET, "devnet", "down"], env=values, capture_output=True, check=False, timeout=120)


@pytest.fixture(autouse=True)
def no_tasks_left(env: dict[str, str]) -> Iterator[None]:
    """Each test starts with no task and leaves none, even when it fails: the tests share the one miner."""
    yield
    for task in cli_json(env, "tasks", "ls")["tasks"]:
        run(env, "tasks", "rm", task["id"])


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PRIMENET, *args], env=env, capture_output=True, text=True, timeout=400, check=False)


def cli_json(env: dict[str, str], *args: str) -> Any:
    done = run(env, *args, "--json")
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    return json.loads(done.stdout)


def nodes(env: dict[str, str]) -> dict[str, dict[str, Any]]:
    return {n["address"]: n for n in cli_json(env, "nodes", "ls")["nodes"]}


def wait_node(env: dict[str, str], address: str, status: str, timeout_s: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        view = nodes(env).get(address.lower())
        if view is not None and view["status"] == status:
            return view
        assert time.monotonic() < deadline, f"{address} did not become {status}: {view}"
        time.sleep(0.5)


def create_task(env: dict[str, str], name: str, image: str = IMAGE) -> str:
    task = cli_json(env, "tasks", "create", "--name", name, "--image", image, "--command", "sh -c 'sleep 300'")
    return str(task["id"])


def remove_task(env: dict[str, str], task_id: str) -> None:
    assert run(env, "tasks", "rm", task_id).returncode == 0


def wait_task(env: dict[str, str], task_id: str, what: str, check: Any, timeout_s: float = 120) -> dict[str, Any]:
    """Poll `tasks show` until `check(view)` holds."""
    deadline = time.monotonic() + timeout_s
    while True:
        view: dict[str, Any] = cli_json(env, "tasks", "show", task_id)
        if check(view):
            return view
        assert time.monotonic() < deadline, f"task {task_id}: {what}: {view}"
        time.sleep(0.5)


def beats_pass(env: dict[str, str], count: int) -> dict[str, Any]:
    """Wait until the devnet's miner has beaten `count` more times, checking it is Healthy at every look."""
    seen: set[float] = set()
    deadline = time.monotonic() + 30 * count
    while True:
        view = nodes(env)[NODE]
        assert view["status"] == "healthy", view
        seen.add(view["last_heartbeat"])
        if len(seen) > count:
            return view
        assert time.monotonic() < deadline, f"the miner stopped beating: {view}"
        time.sleep(0.5)


def assignment(view: dict[str, Any]) -> dict[str, Any] | None:
    found: dict[str, Any] | None = view["assignments"].get(NODE)
    return found


# --- c. two tasks, one node ---------------------------------------------------------------------------------


def test_two_tasks_for_one_node_one_runs_the_other_waits_and_says_why(env: dict[str, str]) -> None:
    first = create_task(env, "first")
    wait_task(env, first, "runs", lambda v: (assignment(v) or {}).get("state") == "running")
    second = create_task(env, "second")
    waiting = wait_task(env, second, "waits for a free node", lambda v: "no free node" in (v["reason"] or ""))
    assert waiting["state"] == "waiting", waiting
    assert waiting["assignments"] == {}, waiting
    listed = {t["id"]: t for t in cli_json(env, "tasks", "ls")["tasks"]}
    assert listed[first]["state"] == "assigned", listed[first]
    assert listed[first]["reason"] is None, listed[first]
    assert listed[second]["state"] == "waiting", listed[second]
    assert listed[second]["reason"] == "no free node: 1 node(s) that fit run other tasks"

    remove_task(env, first)
    ran = wait_task(
        env, second, "runs once the first is gone", lambda v: (assignment(v) or {}).get("state") == "running"
    )
    assert ran["state"] == "assigned"
    assert ran["reason"] is None
    remove_task(env, second)


# --- b. an image that does not exist ------------------------------------------------------------------------


def test_missing_image_fails_with_the_reason_and_is_not_pulled_in_a_loop(env: dict[str, str]) -> None:
    # A registry on a loopback port where nothing listens: the pull fails at once, and no traffic leaves the host.
    image = f"127.0.0.1:{free_port()}/primenet/absent:1"
    log = Path(env["PRIMENET_DEVNET_STATE_DIR"]) / "miner.log"
    task_id = create_task(env, "absent", image)
    failed = wait_task(env, task_id, "fails", lambda v: (assignment(v) or {}).get("state") == "failed")
    message = assignment(failed)["message"]  # type: ignore[index]
    assert f"pull of {image} failed" in (message or ""), failed
    assert failed["state"] == "assigned"  # placed; it is the node's report that says it failed
    beats_pass(env, 5)  # ten seconds of beats: the miner stays Healthy and reports the failure on every one
    pulls = [line for line in log.read_text().splitlines() if "pulling image" in line and image in line]
    # One pull, then the failure stands until the runner's retry_after_s (30 s) passes: no crash loop.
    assert 1 <= len(pulls) <= 2, pulls
    again = cli_json(env, "tasks", "show", task_id)
    assert assignment(again)["state"] == "failed", again  # type: ignore[index]
    remove_task(env, task_id)


# --- d. a full disk -----------------------------------------------------------------------------------------


def fill(directory: Path) -> list[Path]:
    """Take every block and inode of the file system under `directory`; returns what to delete."""
    made: list[Path] = []
    big = directory / "filler"
    made.append(big)
    with contextlib.suppress(OSError), big.open("wb") as out:
        while True:
            out.write(b"\0" * 65536)
            out.flush()
    for n in range(100_000):
        path = directory / f"filler-{n}"
        try:
            path.touch()
        except OSError:
            break
        made.append(path)
    return made


def test_full_disk_fails_the_task_with_the_reason_and_the_miner_keeps_beating(
    env: dict[str, str], devnet_dir: tuple[Path, bool]
) -> None:
    state_dir, mounted = devnet_dir
    if not mounted:
        pytest.skip("needs root to mount a small tmpfs as the miner's state directory")
    miner_dir = state_dir / "miner"
    state_file = miner_dir / "miner-state.json"
    fillers = fill(miner_dir)
    try:
        with pytest.raises(OSError, match="No space left on device"):  # really full
            (miner_dir / "probe").write_bytes(b"x")
        task_id = create_task(env, "full-disk")
        failed = wait_task(env, task_id, "fails", lambda v: (assignment(v) or {}).get("state") == "failed")
        message = assignment(failed)["message"] or ""  # type: ignore[index]
        assert "No space left on device" in message, failed
        assert "state not saved" in message, failed
        beats_pass(env, 3)
        assert task_id not in state_file.read_text()  # the assignment is only in memory, and the beats say so
    finally:
        for path in fillers:
            path.unlink(missing_ok=True)
    # Room again: the next beat writes the state the miner kept in memory; nothing was lost.
    deadline = time.monotonic() + 30
    while task_id not in state_file.read_text():
        assert time.monotonic() < deadline, state_file.read_text()
        time.sleep(0.5)
    remove_task(env, task_id)


# --- a. the orchestrator killed during an ejection round --------------------------------------------------


def rpc(url: str, method: str, *params: Any) -> Any:
    reply = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}, timeout=10)
    body = reply.json()
    assert "error" not in body, body
    return body["result"]


async def pool_nodes(network: Network, count: int) -> list[LocalAccount]:
    """`count` fresh nodes of the devnet provider, validated and joined to pool 0 on chain."""
    provider, validator = role_account("provider"), role_account("validator")
    short = await network.minimum_stake(provider.address, count) - await network.stake_of(provider.address)
    if short > 0:
        await network.increase_stake(network.transactor(provider), short)
    made = []
    for _ in range(count):
        node = Account.create()
        await network.add_node(network.transactor(provider), node, compute_units=1)
        await network.validate_node(network.transactor(validator), provider.address, node.address)
        pool = await network.pool(0)
        block = await network.w3.eth.get_block("latest")
        invite = PoolInvite(
            domain_id=pool.domain_id, pool_id=0, node=node.address,
            nonce=int.from_bytes(Account.create().key[:16]), expiry=int(block["timestamp"]) + 3600,
        )  # fmt: skip
        await network.join_pool(
            network.transactor(provider), invite, network.sign_invite(role_account("orchestrator"), invite)
        )
        made.append(node)
    return made


async def known_to_orchestrator(redis_url: str, nodes: list[LocalAccount]) -> None:
    """List the nodes in the orchestrator's store as its monitor does for a validated node of the pool."""
    redis = connect(redis_url)
    store = OrchestratorStore(redis)
    now = time.time()
    for node in nodes:
        record = NodeRecord(
            node=node.address, provider=role_account("provider").address, ip="127.0.0.1", port=9, pool_id=0,
            specs=ComputeSpecs(cpu_cores=1),
        )  # fmt: skip
        await store.upsert_listed(record, listed_at=now, now=now)
    await redis.aclose()


def heartbeat(url: str, audience: str, node: LocalAccount) -> None:
    body = Heartbeat(address=node.address, version=__version__, timestamp=time.time()).model_dump_json().encode()
    auth = sign_request(node, method="POST", path="/heartbeat", body=body, audience=audience, chain_id=31337)
    reply = httpx.post(
        f"{url}/heartbeat", content=body, headers={"content-type": "application/json", AUTH_HEADER: auth}
    )
    assert reply.status_code == 200, reply.text


def ejections(rpc_url: str, pools: str, nodes: list[LocalAccount]) -> dict[str, int]:
    """ComputePoolNodeEjected events on chain, per node."""
    topic = "0x" + keccak(text="ComputePoolNodeEjected(uint256,address,address)").hex()
    logs = rpc(rpc_url, "eth_getLogs", {"fromBlock": "0x0", "toBlock": "latest", "address": pools, "topics": [topic]})
    counts = {node.address.lower(): 0 for node in nodes}
    for entry in logs:
        address = "0x" + entry["topics"][3][-40:]
        if address in counts:
            counts[address] += 1
    return counts


def test_orchestrator_killed_during_an_ejection_round_ejects_every_dead_node_once(env: dict[str, str]) -> None:
    state_dir = Path(env["PRIMENET_DEVNET_STATE_DIR"])
    rpc_url = f"http://127.0.0.1:{env['PRIMENET_DEVNET_ANVIL_PORT']}"
    deployment = Deployment.load(state_dir / "deployment.json")
    pools = deployment.address("ComputePool")

    async def prepare() -> list[LocalAccount]:
        async with Network.connect(rpc_url, deployment) as network:
            made = await pool_nodes(network, DEAD_NODES)
        await known_to_orchestrator(f"redis://127.0.0.1:{env['PRIMENET_DEVNET_REDIS_PORT']}/3", made)
        return made

    dead = asyncio.run(prepare())
    audience = orchestrator_audience(pools, 0)
    for node in dead:  # signed beats: the chain shows each in the pool, so each is Healthy
        heartbeat(env["PRIMENET_ORCHESTRATOR_URL"], audience, node)
    for node in dead:
        wait_node(env, node.address, "healthy", timeout_s=30)
    # Their beats stop. Before they die, the chain slows to a block a second, so the round of ejections takes
    # seconds (each ejectNode waits for its block) and the orchestrator can be killed in the middle of it.
    for node in dead:
        wait_node(env, node.address, "unhealthy", timeout_s=60)
    rpc(rpc_url, "evm_setAutomine", False)
    rpc(rpc_url, "evm_setIntervalMining", 1)
    try:
        deadline = time.monotonic() + 60
        while sum((counts := ejections(rpc_url, pools, dead)).values()) == 0:
            assert time.monotonic() < deadline, "no ejection reached the chain"
            time.sleep(0.05)
        orchestrator = json.loads((state_dir / "devnet.json").read_text())["processes"]["orchestrator"]
        os.kill(orchestrator["pid"], signal.SIGKILL)
        at_kill = ejections(rpc_url, pools, dead)
        assert 0 in at_kill.values(), f"the round was over before the kill: {counts}, {at_kill}"
        restarted = run(env, "devnet", "restart", "orchestrator", "--json")
        assert restarted.returncode == 0, restarted.stdout + restarted.stderr[-3000:]
        assert json.loads(restarted.stdout)["was_running"] is False
        for node in dead:
            wait_node(env, node.address, "ejected", timeout_s=120)
    finally:
        rpc(rpc_url, "evm_setIntervalMining", 0)
        rpc(rpc_url, "evm_setAutomine", True)

    assert ejections(rpc_url, pools, dead) == {node.address.lower(): 1 for node in dead}

    async def in_pool() -> list[bool]:
        async with Network.connect(rpc_url, deployment) as network:
            return [await network.is_node_in_pool(0, node.address) for node in dead]

    assert asyncio.run(in_pool()) == [False] * DEAD_NODES
    wait_node(env, NODE, "healthy", timeout_s=60)  # the real miner rode it out
