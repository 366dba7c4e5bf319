"""`make demo`'s two commands on free ports: the whole network comes up and a task runs on the miner.

Real processes throughout: Anvil, Redis, discovery, validator (the proof-of-compute challenge), orchestrator and a
miner running its task in Docker. Midway the orchestrator is killed and restarted (`devnet restart --kill`): a crash
of the coordinator loses no record and restarts no work. Then the miner is killed: its node goes Unhealthy, Dead
and is ejected on chain; restarted, it is Healthy again, back in the pool, and runs the task again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from primenet.devnet.accounts import role_account
from primenet.devnet.processes import cmdline_of, free_port

PRIMENET = str(Path(sys.executable).with_name("primenet"))
REPO = Path(__file__).resolve().parents[2]
SERVICES = ("ANVIL", "REDIS", "DISCOVERY", "ORCHESTRATOR", "MINER", "VALIDATOR")
HEARTBEAT_S = 2.0


@pytest.fixture(scope="module")
def task_image() -> None:
    subprocess.run(["/bin/bash", str(REPO / "scripts/build-task-image.sh")], check=True, capture_output=True)


@pytest.fixture
def env(tmp_path: Path, task_image: None) -> Iterator[dict[str, str]]:
    values = {
        **os.environ,
        "PRIMENET_DEVNET_STATE_DIR": str(tmp_path / "devnet"),
        **{f"PRIMENET_DEVNET_{name}_PORT": str(free_port()) for name in SERVICES},
        "PRIMENET_DEVNET_SERVICES": "true",
        "PRIMENET_DEVNET_HEARTBEAT_INTERVAL_S": str(HEARTBEAT_S),
        # Short enough to watch a lost node die within the test, long enough to ride out an orchestrator restart.
        "PRIMENET_UNHEALTHY_AFTER_S": "10",
        "PRIMENET_DEAD_AFTER_S": "20",
    }
    yield values
    subprocess.run([PRIMENET, "devnet", "down"], env=values, capture_output=True, check=False, timeout=120)


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PRIMENET, *args], env=env, capture_output=True, text=True, timeout=400, check=False)


def task_containers(client: docker.DockerClient, node: str) -> list[Any]:
    return [
        c
        for c in client.containers.list(all=True, filters={"label": "primenet.node"}, ignore_removed=True)
        if c.labels.get("primenet.node", "").lower() == node
    ]


def listings(buyer: dict[str, str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """`nodes ls` and `tasks ls` without what moves by itself (heartbeat times, container details)."""
    nodes = json.loads(run(buyer, "nodes", "ls", "--json").stdout)
    tasks = json.loads(run(buyer, "tasks", "ls", "--json").stdout)["tasks"]
    return (
        {
            n["address"]: {"status": n["status"], "task_id": n["task_id"], "task_state": n["task_state"]}
            for n in nodes["nodes"]
        },
        [{**t, "assignments": {node: a["state"] for node, a in t["assignments"].items()}} for t in tasks],
    )


def wait_running(buyer: dict[str, str], task_id: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        shown = json.loads(run(buyer, "tasks", "show", task_id, "--json").stdout)
        if any(a["state"] == "running" for a in shown["assignments"].values()):
            return
        assert time.monotonic() < deadline, f"the task did not run: {shown}"
        time.sleep(1)


def wait_through(buyer: dict[str, str], node: str, wanted: list[str], timeout_s: float) -> list[str]:
    """Poll the node's status until it has shown each of `wanted`, in that order; returns the statuses seen."""
    seen: list[str] = []
    pending = list(wanted)
    deadline = time.monotonic() + timeout_s
    while pending:
        view = json.loads(run(buyer, "nodes", "ls", "--json").stdout)
        (status,) = (n["status"] for n in view["nodes"] if n["address"] == node)
        if not seen or seen[-1] != status:
            seen.append(status)
        if status == pending[0]:
            pending.pop(0)
            continue
        assert time.monotonic() < deadline, f"the node did not go through {wanted}: {seen}"
        time.sleep(0.5)
    return seen


def environ_of(pid: int) -> list[str]:
    return sorted(Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0"))


def test_whole_network_runs_a_task_and_stops_cleanly(env: dict[str, str]) -> None:
    up = run(env, "devnet", "up", "--json")
    assert up.returncode == 0, up.stderr[-3000:]
    assert "provider 0x90F79bf6EB2c4f870365E785982E1f101E93b906 whitelisted" in up.stderr

    demo = run(env, "devnet", "demo", "--timeout", "240")
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-3000:]
    assert "hello from primenet" in demo.stdout
    assert "tick 1" in demo.stdout
    node = role_account("node").address.lower()
    assert f"node {node} is Healthy" in demo.stderr

    # The buyer's commands against the same network: replace the demo task with one of ours, read its output.
    buyer = {**env, "PRIMENET_ORCHESTRATOR_URL": f"http://127.0.0.1:{env['PRIMENET_DEVNET_ORCHESTRATOR_PORT']}"}
    buyer["PRIMENET_ADMIN_TOKEN"] = (Path(env["PRIMENET_DEVNET_STATE_DIR"]) / "admin.token").read_text().strip()
    (demo_task,) = json.loads(run(buyer, "tasks", "ls", "--json").stdout)["tasks"]
    assert run(buyer, "tasks", "rm", demo_task["id"]).returncode == 0
    created = run(
        buyer, "tasks", "create", "--name", "e2e", "--image", "local/primenet-busybox:1",
        "--command", "sh -c 'echo e2e-output-$GREETING; sleep 300'", "--env", "GREETING=buyer", "--json",
    )  # fmt: skip
    assert created.returncode == 0, created.stdout + created.stderr
    task_id = json.loads(created.stdout)["id"]
    wait_running(buyer, task_id, timeout_s=120)
    deadline = time.monotonic() + 30
    while "e2e-output-buyer" not in (logs := run(buyer, "logs", node, "--tail", "20")).stdout:
        assert time.monotonic() < deadline, logs.stdout + logs.stderr
        time.sleep(1)
    nodes = json.loads(run(buyer, "nodes", "ls", "--json").stdout)
    assert nodes["counts"].get("healthy") == 1

    # A crash of the coordinator: SIGKILL the orchestrator and start it again. Its records are in Redis and the work
    # is on the miner, so the listings stay the same, the node stays Healthy and the task's container is untouched.
    client = docker.from_env()
    (container,) = task_containers(client, node)
    started_at = container.attrs["State"]["StartedAt"]
    nodes_before, tasks_before = listings(buyer)
    assert [t["name"] for t in tasks_before] == ["e2e"]
    assert nodes_before[node] == {"status": "healthy", "task_id": task_id, "task_state": "running"}
    state_file = Path(env["PRIMENET_DEVNET_STATE_DIR"]) / "devnet.json"
    old = json.loads(state_file.read_text())["processes"]["orchestrator"]
    old_environ = environ_of(old["pid"])
    restarted = run(env, "devnet", "restart", "orchestrator", "--kill", "--json")
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr[-3000:]
    restarted_at = time.time()
    report = json.loads(restarted.stdout)
    assert report["killed"] is True
    new = json.loads(state_file.read_text())["processes"]["orchestrator"]
    assert new["pid"] == report["pid"] != old["pid"]
    assert cmdline_of(old["pid"]) is None
    assert (new["cmdline"], new["log"], new["url"]) == (old["cmdline"], old["log"], old["url"])
    assert environ_of(new["pid"]) == old_environ
    # Healthy across at least two heartbeat intervals, with beats that reached the new orchestrator.
    deadline = time.monotonic() + 60
    while True:
        nodes_after = json.loads(run(buyer, "nodes", "ls", "--json").stdout)["nodes"]
        (view,) = (n for n in nodes_after if n["address"] == node)
        assert view["status"] == "healthy", nodes_after
        if time.time() - restarted_at >= 2 * HEARTBEAT_S and (view["last_heartbeat"] or 0) > restarted_at:
            break
        assert time.monotonic() < deadline, f"no heartbeat reached the restarted orchestrator: {view}"
        time.sleep(0.5)
    assert listings(buyer) == (nodes_before, tasks_before)
    (after,) = task_containers(client, node)
    after.reload()
    assert after.id == container.id
    assert after.status == "running"
    assert after.attrs["State"]["StartedAt"] == started_at
    assert after.attrs["RestartCount"] == 0

    # A crash of the miner: its node goes Unhealthy, then Dead and is ejected from the pool on chain; started again,
    # the miner heartbeats, is invited again, joins the pool again and runs the task again.
    miner = json.loads(state_file.read_text())["processes"]["miner"]
    os.kill(miner["pid"], signal.SIGKILL)
    wait_through(buyer, node, ["unhealthy", "ejected"], timeout_s=90)
    chain = ["chain", "--rpc-url", f"http://127.0.0.1:{env['PRIMENET_DEVNET_ANVIL_PORT']}"]
    chain += ["--deployment", str(state_file.with_name("deployment.json"))]
    assert json.loads(run(env, *chain, "node-info", node, "--json").stdout)["pool_id"] is None
    restarted = run(env, "devnet", "restart", "miner")
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr[-3000:]
    wait_through(buyer, node, ["healthy"], timeout_s=90)
    assert json.loads(run(env, *chain, "node-info", node, "--json").stdout)["pool_id"] == 0
    wait_running(buyer, task_id, timeout_s=90)

    status = run(env, "devnet", "status", "--json")
    processes = json.loads(status.stdout)["processes"]
    assert set(processes) == {"anvil", "redis", "discovery", "validator", "orchestrator", "miner"}
    down = run(env, "devnet", "down")
    assert down.returncode == 0, down.stderr
    for proc in processes.values():
        assert cmdline_of(proc["pid"]) is None, f"{proc['name']} is still running"
    assert task_containers(client, node) == []
