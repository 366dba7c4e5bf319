"""`make demo`'s two commands on free ports: the whole network comes up and a task runs on the miner.

Real processes throughout: Anvil, Redis, discovery, validator (the proof-of-compute challenge), orchestrator and a
miner running its task in Docker.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from primenet.devnet.accounts import role_account
from primenet.devnet.processes import cmdline_of, free_port

PRIMENET = str(Path(sys.executable).with_name("primenet"))
REPO = Path(__file__).resolve().parents[2]
SERVICES = ("ANVIL", "REDIS", "DISCOVERY", "ORCHESTRATOR", "MINER", "VALIDATOR")


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
    }
    yield values
    subprocess.run([PRIMENET, "devnet", "down"], env=values, capture_output=True, check=False, timeout=120)


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PRIMENET, *args], env=env, capture_output=True, text=True, timeout=400, check=False)


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
    deadline = time.monotonic() + 120
    while True:
        shown = json.loads(run(buyer, "tasks", "show", task_id, "--json").stdout)
        if any(a["state"] == "running" for a in shown["assignments"].values()):
            break
        assert time.monotonic() < deadline, f"the task did not start: {shown}"
        time.sleep(1)
    deadline = time.monotonic() + 30
    while "e2e-output-buyer" not in (logs := run(buyer, "logs", node, "--tail", "20")).stdout:
        assert time.monotonic() < deadline, logs.stdout + logs.stderr
        time.sleep(1)
    nodes = json.loads(run(buyer, "nodes", "ls", "--json").stdout)
    assert nodes["counts"].get("healthy") == 1

    status = run(env, "devnet", "status", "--json")
    processes = json.loads(status.stdout)["processes"]
    assert set(processes) == {"anvil", "redis", "discovery", "validator", "orchestrator", "miner"}
    down = run(env, "devnet", "down")
    assert down.returncode == 0, down.stderr
    for proc in processes.values():
        assert cmdline_of(proc["pid"]) is None, f"{proc['name']} is still running"
    client = docker.from_env()
    leftovers = [
        c.name
        for c in client.containers.list(all=True, filters={"label": "primenet.node"})
        if c.labels.get("primenet.node", "").lower() == node
    ]
    assert leftovers == []
