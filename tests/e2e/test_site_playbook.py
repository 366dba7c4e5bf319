"""A GPU provider's one command: `ansible-playbook -i inventories/local playbooks/site.yml` makes a bare host a miner.

The "GPU host" is a bare Debian 12 container (the Molecule base: python3, python3-apt, sudo, CA certificates; no
Docker, no GPU) on this machine's network, reached through `community.docker.docker` as inventories/local says.
The coordinator is the devnet of `make demo` on free ports, which the local inventory finds through the same
PRIMENET_DEVNET_* settings. One site.yml run installs Docker (docker_engine starts the host's own dockerd, there
being no systemd), the stand-in NVIDIA toolkit, the miner image from its archive, the keys and the miner, and ends
when the node is registered with stake, validated by the challenge, listed and Healthy; validate.yml's report must
say ok. A task for every node then runs on the host's own engine. A second run changes nothing; deregister.yml
takes the node out of the pool and the registry, hands its stake back and leaves the host without the miner's
container and files.

Only what a container cannot be is arranged by hand before the run: writable cgroups (what --privileged would give)
and the stand-in toolkit repository copied in (NVIDIA's cannot be reached here). The host and everything in it are
removed however the test ends.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from images import ensure_images
from machines import DOCKER, docker, inside, local_inventory_env, remove_machines, start_gpu_host
from primenet.devnet.accounts import role_account
from primenet.devnet.processes import free_port

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PRIMENET = str(BIN / "primenet")
LABEL = "org.primenet.test=site-playbook"
HOST = "primenet-gpu-host"  # the inventory's name for the host (its container's name is the test's own)
MINER_ARCHIVE = REPO / ".cache/images/primenet-miner.tar"
TASK_IMAGE = "local/primenet-busybox:1"
RECAP = re.compile(rf"^{HOST}\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def run(*argv: str, env: dict[str, str], timeout: float = 300, stdin: Any = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv), env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False, stdin=stdin
    )


def recap(output: str) -> tuple[int, int, int, int]:
    """The host's line of the play recap: ok, changed, unreachable, failed (the last playbook's, for site.yml)."""
    found = RECAP.findall(output)
    assert found, output[-3000:]
    ok, changed, unreachable, failed = (int(value) for value in found[-1])
    return ok, changed, unreachable, failed


@pytest.fixture(scope="module")
def prerequisites() -> None:
    """The Debian base, the collections, the task image and the miner image's archive (each cached)."""
    for script in ("build-test-images.sh", "ansible-collections.sh", "build-task-image.sh"):
        built = subprocess.run(["/bin/bash", str(REPO / "scripts" / script)], capture_output=True, text=True)
        assert built.returncode == 0, f"{script}: {built.stdout[-2000:]}{built.stderr[-2000:]}"
    miner = ensure_images()["miner"]
    MINER_ARCHIVE.parent.mkdir(parents=True, exist_ok=True)
    saved = docker("save", "--output", str(MINER_ARCHIVE), miner, timeout=300)
    assert saved.returncode == 0, saved.stderr


@pytest.fixture
def host(prerequisites: None, tmp_path: Path) -> Iterator[str]:
    """The bare GPU host; removed whatever happens."""
    assert remove_machines(LABEL) == []
    name = f"primenet-site-{uuid.uuid4().hex[:8]}"
    try:
        start_gpu_host(name, LABEL, tmp_path)
        yield name
    finally:
        remove_machines(LABEL)


@pytest.fixture
def devnet(host: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """`primenet devnet up` on free ports; the environment in which the local inventory finds it and the host."""
    env = local_inventory_env(tmp_path / "devnet", host)
    try:
        started = run(PRIMENET, "devnet", "up", env=env, timeout=400)
        assert started.returncode == 0, started.stdout[-3000:] + started.stderr[-3000:]
        yield env
    finally:
        run(PRIMENET, "devnet", "down", env=env, timeout=120)


def fact(host: str) -> dict[str, Any]:
    rc, out = inside(host, "cat /etc/ansible/facts.d/primenet_miner.fact")
    assert rc == 0, out
    report: dict[str, Any] = json.loads(out)
    return report


def chain(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    state = Path(env["PRIMENET_DEVNET_STATE_DIR"])
    rpc = f"http://127.0.0.1:{env['PRIMENET_DEVNET_ANVIL_PORT']}"
    return run(PRIMENET, "chain", "--rpc-url", rpc, "--deployment", str(state / "deployment.json"), *args, env=env)


def provider_stake(env: dict[str, str]) -> dict[str, int]:
    """The devnet provider's stake and reclaimable stake (its own miner's node and the host's share it)."""
    state = Path(env["PRIMENET_DEVNET_STATE_DIR"])
    balance_env = {
        **env,
        "PRIMENET_RPC_URL": f"http://127.0.0.1:{env['PRIMENET_DEVNET_ANVIL_PORT']}",
        "PRIMENET_DEPLOYMENT_FILE": str(state / "deployment.json"),
        "PRIMENET_PROVIDER_KEY_FILE": str(state / "keys/provider.key"),
        "PRIMENET_NODE_KEY_FILE": str(state / "keys/node.key"),
    }
    done = run(PRIMENET, "miner", "balance", "--json", env=balance_env)
    assert done.returncode == 0, done.stderr
    amounts = json.loads(done.stdout)
    return {"stake": int(amounts["stake"]), "reclaimable": int(amounts["reclaimable"])}


def pool_nodes(env: dict[str, str]) -> dict[str, dict[str, Any]]:
    buyer = {
        **env,
        "PRIMENET_ORCHESTRATOR_URL": f"http://127.0.0.1:{env['PRIMENET_DEVNET_ORCHESTRATOR_PORT']}",
        "PRIMENET_ADMIN_TOKEN_FILE": str(Path(env["PRIMENET_DEVNET_STATE_DIR"]) / "admin.token"),
    }
    done = run(PRIMENET, "nodes", "ls", "--json", env=buyer)
    assert done.returncode == 0, done.stderr
    return {node["address"].lower(): node for node in json.loads(done.stdout)["nodes"]}


@pytest.mark.timeout(2400)
def test_site_yml_makes_a_bare_host_a_healthy_miner_and_deregister_yml_undoes_it(
    devnet: dict[str, str], host: str, tmp_path: Path
) -> None:
    env = devnet
    settings = ["-e", f"primenet_miner_port={free_port()}", "-e", f"validate_report_dir={tmp_path / 'validate'}"]
    site = [str(BIN / "ansible-playbook"), "-i", "inventories/local", *settings, "playbooks/site.yml"]
    stake_before = provider_stake(env)

    start = time.monotonic()
    first = run(*site, env=env, timeout=1200)
    took = time.monotonic() - start
    assert first.returncode == 0, first.stdout[-6000:] + first.stderr[-3000:]
    assert recap(first.stdout)[2:] == (0, 0)

    # The engine runs, started by docker_engine; the miner container runs with its restart policy.
    report = fact(host)
    node = report["node"].lower()
    rc, out = inside(host, "docker inspect --format '{{.State.Status}} {{.HostConfig.RestartPolicy.Name}}' "
                           f"{report['container']}")  # fmt: skip
    assert (rc, out.split()) == (0, ["running", "unless-stopped"]), out
    # Registered with stake, validated, in pool 0 (the chain); listed (discovery, read by the node); Healthy.
    on_chain = chain(env, "node-info", node, "--json")
    assert on_chain.returncode == 0, on_chain.stderr
    record = json.loads(on_chain.stdout)
    assert (record["provider"].lower(), record["is_validated"], record["is_active"], record["pool_id"]) == (
        role_account("provider").address.lower(), True, True, 0,
    )  # fmt: skip
    assert provider_stake(env)["stake"] > stake_before["stake"]
    rc, out = inside(host, f"docker exec {report['container']} primenet miner record --json")
    assert rc == 0, out
    assert (json.loads(out)["node"], json.loads(out)["ip"]) == (node, "127.0.0.2")
    assert pool_nodes(env)[node]["status"] == "healthy"
    validation = json.loads((tmp_path / "validate" / f"{HOST}.json").read_text())
    assert validation["ok"], validation["failures"]
    assert {"primenet_miner_container", "primenet_miner_api", "primenet_miner_check"} <= {
        check["name"] for check in validation["checks"] if check["status"] == "pass"
    }

    # A task for every node of the pool runs on the host's own engine (its image loaded there: no registry here).
    with subprocess.Popen([DOCKER, "save", TASK_IMAGE], stdout=subprocess.PIPE) as saver:
        loaded = run(DOCKER, "exec", "-i", host, "docker", "load", env=env, stdin=saver.stdout)
    assert loaded.returncode == 0, loaded.stderr
    buyer = {
        **env,
        "PRIMENET_ORCHESTRATOR_URL": report["orchestrator_url"],
        "PRIMENET_ADMIN_TOKEN_FILE": str(Path(env["PRIMENET_DEVNET_STATE_DIR"]) / "admin.token"),
    }
    created = run(PRIMENET, "tasks", "create", "--name", "site-check", "--image", TASK_IMAGE, "--nodes", "all",
                  "--command", "sh -c 'echo hello from the gpu host; sleep 600'", env=buyer)  # fmt: skip
    assert created.returncode == 0, created.stderr

    logs = "docker ps -q --filter label=primenet.node | xargs -r docker logs 2>&1"
    deadline = time.monotonic() + 120
    while "hello from the gpu host" not in inside(host, logs)[1]:
        assert time.monotonic() < deadline, "the task never printed on the host's engine"
        time.sleep(1)

    # A second run changes nothing.
    again = run(*site, env=env, timeout=1200)
    assert again.returncode == 0, again.stdout[-6000:] + again.stderr[-3000:]
    assert recap(again.stdout)[1:] == (0, 0, 0), again.stdout[-4000:]

    # deregister.yml: out of the pool and the registry, the stake handed back, nothing of the miner left.
    removal = [str(BIN / "ansible-playbook"), "-i", "inventories/local", *settings, "--limit", HOST]
    gone = run(*removal, "playbooks/deregister.yml", env=env, timeout=600)
    assert gone.returncode == 0, gone.stdout[-6000:] + gone.stderr[-3000:]
    after = chain(env, "node-info", node)
    assert (after.returncode, "not registered on chain" in after.stderr) == (1, True), after.stdout + after.stderr
    assert provider_stake(env) == stake_before
    assert node not in pool_nodes(env) or pool_nodes(env)[node]["status"] != "healthy"
    rc, out = inside(host, "docker ps -aq; ls -d /etc/primenet/miner /var/lib/primenet "
                           "/etc/ansible/facts.d/primenet_miner.fact 2>/dev/null; true")  # fmt: skip
    assert (rc, out.split()) == (0, []), out
    print(f"\nsite.yml on a bare host: {took:.0f} s to a Healthy miner")
