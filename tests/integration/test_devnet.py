"""`primenet devnet up|status|down` as a person runs it: real processes, real ports, real state file."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from primenet.devnet.processes import cmdline_of, free_port

pytestmark = pytest.mark.integration

PRIMENET = str(Path(sys.executable).with_name("primenet"))


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Environment for a private devnet on free ports; whatever the test leaves running is stopped."""
    values = {
        **os.environ,
        "PRIMENET_DEVNET_STATE_DIR": str(tmp_path / "state"),
        "PRIMENET_DEVNET_ANVIL_PORT": str(free_port()),
        "PRIMENET_DEVNET_REDIS_PORT": str(free_port()),
        "PRIMENET_DEVNET_SERVICES": "false",  # chain and Redis only; tests/e2e runs the whole network
    }
    yield values
    subprocess.run([PRIMENET, "devnet", "down"], env=values, capture_output=True, check=False)


def primenet(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PRIMENET, *args], env=env, capture_output=True, text=True, timeout=60, check=False)


def status(env: dict[str, str]) -> dict[str, Any]:
    result = primenet(env, "devnet", "status", "--json")
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def test_up_status_down(env: dict[str, str]) -> None:
    up = primenet(env, "devnet", "up", "--json")
    assert up.returncode == 0, up.stdout + up.stderr
    processes = status(env)["processes"]
    assert set(processes) == {"anvil", "redis"}
    assert all(proc["running"] for proc in processes.values())

    chain = httpx.post(processes["anvil"]["url"], json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"})
    assert int(chain.json()["result"], 16) == 31337
    with redis.Redis.from_url(processes["redis"]["url"]) as client:
        assert client.ping()

    down = primenet(env, "devnet", "down")
    assert down.returncode == 0, down.stderr
    assert "Stopped: anvil, redis." in down.stdout
    for proc in processes.values():
        assert cmdline_of(proc["pid"]) is None, f"{proc['name']} (pid {proc['pid']}) is still running"
    assert status(env)["running"] is False
    assert status(env)["processes"] == {}
    assert not (Path(env["PRIMENET_DEVNET_STATE_DIR"]) / "devnet.json").exists()


def test_second_up_is_a_message_not_a_crash(env: dict[str, str]) -> None:
    assert primenet(env, "devnet", "up").returncode == 0
    pids = {name: proc["pid"] for name, proc in status(env)["processes"].items()}
    again = primenet(env, "devnet", "up")
    assert again.returncode == 0, again.stderr
    assert "already running" in again.stdout
    assert {name: proc["pid"] for name, proc in status(env)["processes"].items()} == pids


def test_port_in_use_is_a_clear_error_and_starts_nothing(env: dict[str, str]) -> None:
    port = int(env["PRIMENET_DEVNET_REDIS_PORT"])
    with socket.create_server(("127.0.0.1", port)):  # another program holds Redis's port
        up = primenet(env, "devnet", "up")
    assert up.returncode == 1
    assert f"port {port} on 127.0.0.1 is in use by another program" in up.stderr
    assert status(env)["processes"] == {}


def test_a_dead_process_shows_in_status_and_up_restarts_cleanly(env: dict[str, str]) -> None:
    assert primenet(env, "devnet", "up").returncode == 0
    anvil = status(env)["processes"]["anvil"]
    os.kill(anvil["pid"], 9)
    report = primenet(env, "devnet", "status", "--json")
    assert report.returncode == 1
    assert json.loads(report.stdout)["processes"]["anvil"]["running"] is False

    restarted = primenet(env, "devnet", "up")
    assert restarted.returncode == 0, restarted.stdout
    processes = status(env)["processes"]
    assert all(proc["running"] for proc in processes.values())
    assert processes["anvil"]["pid"] != anvil["pid"]


def test_down_never_kills_a_process_that_reused_a_recorded_pid(env: dict[str, str]) -> None:
    assert primenet(env, "devnet", "up").returncode == 0
    state_file = Path(env["PRIMENET_DEVNET_STATE_DIR"]) / "devnet.json"
    state = json.loads(state_file.read_text())
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        real_redis_pid = state["processes"]["redis"]["pid"]
        state["processes"]["redis"]["pid"] = bystander.pid  # as if the pid had been reused after a crash
        state_file.write_text(json.dumps(state))
        down = primenet(env, "devnet", "down")
        assert down.returncode == 0
        assert bystander.poll() is None, "down killed an unrelated process"
        assert "Stopped: anvil." in down.stdout
    finally:
        bystander.kill()
        bystander.wait()
        os.kill(real_redis_pid, 15)


def test_redis_keeps_acknowledged_writes_across_a_restart(env: dict[str, str]) -> None:
    assert primenet(env, "devnet", "up").returncode == 0
    url = status(env)["processes"]["redis"]["url"]
    with redis.Redis.from_url(url) as client:
        client.set("kept", "yes")
    assert primenet(env, "devnet", "down").returncode == 0
    assert primenet(env, "devnet", "up").returncode == 0
    with redis.Redis.from_url(url) as client:
        assert client.get("kept") == b"yes"


def rpc(url: str, method: str, *params: Any) -> Any:
    reply = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}, timeout=5)
    return reply.json()["result"]


def chain_view(url: str, deployment: Path) -> dict[str, Any]:
    """What must survive a restart of Anvil: the blocks, the contracts' code and the events they emitted."""
    contracts = json.loads(deployment.read_text())["contracts"]
    return {
        "block": int(rpc(url, "eth_blockNumber"), 16),
        "code": {name: rpc(url, "eth_getCode", address, "latest") for name, address in contracts.items()},
        "logs": len(rpc(url, "eth_getLogs", {"fromBlock": "0x0", "toBlock": "latest"})),
    }


@pytest.mark.parametrize("kill", [False, True], ids=["sigterm", "sigkill"])
def test_restart_of_anvil_and_redis_keeps_the_chain_and_the_data(env: dict[str, str], kill: bool) -> None:
    assert primenet(env, "devnet", "up").returncode == 0
    processes = status(env)["processes"]
    deployment = Path(env["PRIMENET_DEVNET_STATE_DIR"]) / "deployment.json"
    before = chain_view(processes["anvil"]["url"], deployment)
    assert before["logs"] > 0
    assert all(code != "0x" for code in before["code"].values())
    with redis.Redis.from_url(processes["redis"]["url"]) as client:
        client.set("kept", "yes")
    if kill:  # only the periodic dump survives a SIGKILL: let one happen after the last block
        state_file = Path(env["PRIMENET_DEVNET_STATE_DIR"]) / "anvil-state.json"
        written = state_file.stat().st_mtime if state_file.exists() else 0.0
        while not state_file.exists() or state_file.stat().st_mtime == written:
            time.sleep(0.2)
    flags = ["--kill"] if kill else []
    for name in ("anvil", "redis"):
        restarted = primenet(env, "devnet", "restart", name, *flags, "--json")
        assert restarted.returncode == 0, restarted.stdout + restarted.stderr
        report = json.loads(restarted.stdout)
        assert report["killed"] is kill
        assert report["pid"] != processes[name]["pid"]
        assert cmdline_of(processes[name]["pid"]) is None
    after = status(env)["processes"]
    assert all(proc["running"] for proc in after.values())
    assert chain_view(after["anvil"]["url"], deployment) == before
    with redis.Redis.from_url(after["redis"]["url"]) as client:
        assert client.get("kept") == b"yes"


def test_down_and_up_keep_the_chain_and_the_store_together(env: dict[str, str]) -> None:
    assert primenet(env, "devnet", "up").returncode == 0
    processes = status(env)["processes"]
    deployment = Path(env["PRIMENET_DEVNET_STATE_DIR"]) / "deployment.json"
    before = chain_view(processes["anvil"]["url"], deployment)
    with redis.Redis.from_url(processes["redis"]["url"]) as client:
        client.set("kept", "yes")
    assert primenet(env, "devnet", "down").returncode == 0
    up = primenet(env, "devnet", "up")
    assert up.returncode == 0, up.stderr
    assert "contracts already deployed; reusing them" in up.stderr
    assert "wiped" not in up.stderr
    assert chain_view(processes["anvil"]["url"], deployment) == before
    with redis.Redis.from_url(processes["redis"]["url"]) as client:
        assert client.get("kept") == b"yes"


def test_a_fresh_chain_starts_with_a_fresh_store(env: dict[str, str]) -> None:
    """The store's nodes and tasks belong to the chain they were made on: a new chain never sees them."""
    assert primenet(env, "devnet", "up").returncode == 0
    url = status(env)["processes"]["redis"]["url"]
    with redis.Redis.from_url(url) as client:
        client.set("from-the-old-chain", "yes")
    assert primenet(env, "devnet", "down").returncode == 0
    # The chain is gone (an older primenet kept none, or the file was removed); the store's files are still there.
    (Path(env["PRIMENET_DEVNET_STATE_DIR"]) / "anvil-state.json").unlink(missing_ok=True)
    up = primenet(env, "devnet", "up")
    assert up.returncode == 0, up.stderr
    assert "the chain is fresh, so the Redis data of an earlier run" in up.stderr
    with redis.Redis.from_url(url) as client:
        assert client.get("from-the-old-chain") is None
        assert client.dbsize() == 0
