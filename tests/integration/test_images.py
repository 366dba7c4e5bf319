"""The images run what they package: each service image answers /health started alone with its settings (and
Docker's HEALTHCHECK agrees), the chain and Redis images serve, the miner image's doctor reports the engine whose
socket it was given, everything runs as uid 10001, the OCI labels are there, and the service images meet the size
target. Real containers on the local dockerd: host networking, free loopback ports; all removed at the end."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
from docker.errors import NotFound
from eth_account import Account
from redis import Redis

from images import REPO_ROOT, SERVICES, ensure_images, image_version
from primenet.devnet.accounts import role_account
from primenet.devnet.local import DevnetState
from primenet.devnet.processes import free_port

UID = 10001
SIZE_LIMIT_BYTES = 250_000_000
HEALTHY_TIMEOUT_S = 90.0
DOCKER_SOCKET = "/var/run/docker.sock"
DEPLOYMENT_DIR = "/run/primenet/deployment"
SECRETS_DIR = "/run/secrets/primenet"

Run = Callable[..., Any]


@pytest.fixture(scope="module")
def images() -> dict[str, str]:
    return ensure_images()


@pytest.fixture(scope="module")
def engine() -> Iterator[Any]:
    client = docker.from_env()
    yield client
    client.close()


@pytest.fixture
def run(engine: Any) -> Iterator[Run]:
    """Starts detached containers on the host network under a label unique to the test; removes them all after,
    whatever the outcome."""
    label = f"primenet-test-images-{uuid.uuid4().hex[:12]}"

    def start(image: str, command: list[str] | None = None, **options: Any) -> Any:
        return engine.containers.run(image, command, detach=True, network_mode="host", labels={label: "1"}, **options)

    try:
        yield start
    finally:
        for container in engine.containers.list(all=True, filters={"label": label}, ignore_removed=True):
            with contextlib.suppress(NotFound):
                container.remove(force=True, v=True)


def secret_file(folder: Path, name: str, content: str) -> Path:
    """A 0600 file owned by the images' user, as a mounted secret must be to be readable inside."""
    path = folder / name
    path.write_text(content)
    path.chmod(0o600)
    os.chown(path, UID, UID)
    return path


@pytest.fixture
def deployment(devnet: DevnetState, tmp_path: Path) -> Path:
    """The devnet's deployment JSON in a folder the images' user may read (pytest's own folders are 0700 root),
    as the deployment volume holds it."""
    folder = tmp_path / "deployment"
    folder.mkdir()
    shutil.copy(devnet.deployment_file, folder / "deployment.json")
    (folder / "deployment.json").chmod(0o644)
    os.chown(folder, UID, UID)
    return folder


def service_env(devnet: DevnetState, port: int) -> dict[str, str]:
    """What each service image is given: its port on loopback, the chain, Redis, the deployment on its volume."""
    return {
        "PRIMENET_PORT": str(port),
        "PRIMENET_HOST": "127.0.0.1",
        "PRIMENET_DEPLOYMENT_FILE": f"{DEPLOYMENT_DIR}/deployment.json",
        "PRIMENET_RPC_URL": devnet.rpc_url,
        "PRIMENET_REDIS_URL": devnet.redis_url,
        "PRIMENET_ALLOW_LOOPBACK_NODES": "true",  # the miner container publishes 127.0.0.1 (host networking)
        "PRIMENET_TASK_NETWORK": "host",  # our engines have no bridge: a miner's tasks share the host's network
    }


def deployment_mount(deployment: Path) -> dict[str, dict[str, str]]:
    return {str(deployment): {"bind": DEPLOYMENT_DIR, "mode": "ro"}}


def wait_healthy(container: Any, port: int, timeout_s: float = HEALTHY_TIMEOUT_S) -> None:
    """Until Docker's HEALTHCHECK reports healthy and GET /health answers 200 from the host; the container's logs
    in the failure message otherwise."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        container.reload()
        state = container.attrs["State"]
        if state["Status"] == "exited":
            break
        if state.get("Health", {}).get("Status") == "healthy":
            assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
            return
        time.sleep(0.5)
    logs = container.logs(tail=40).decode(errors="replace")
    raise AssertionError(f"{container.image.tags} not healthy ({container.attrs['State']}):\n{logs}")


def start_discovery(run: Run, images: dict[str, str], devnet: DevnetState, deployment: Path) -> tuple[Any, int]:
    port = free_port()
    container = run(images["discovery"], environment=service_env(devnet, port), volumes=deployment_mount(deployment))
    return container, port


def test_discovery_orchestrator_and_validator_answer_health(
    run: Run, images: dict[str, str], devnet: DevnetState, deployment: Path, tmp_path: Path
) -> None:
    discovery, discovery_port = start_discovery(run, images, devnet, deployment)
    discovery_url = f"http://127.0.0.1:{discovery_port}"
    secrets = {
        "orchestrator": secret_file(tmp_path, "manager.key", role_account("orchestrator").key.hex()),
        "validator": secret_file(tmp_path, "validator.key", role_account("validator").key.hex()),
    }
    key_settings = {"orchestrator": "PRIMENET_MANAGER_KEY_FILE", "validator": "PRIMENET_VALIDATOR_KEY_FILE"}
    started = [(discovery, discovery_port)]
    for name in ("orchestrator", "validator"):
        port = free_port()
        key_path = f"{SECRETS_DIR}/{secrets[name].name}"
        environment = {
            **service_env(devnet, port),
            "PRIMENET_DISCOVERY_URL": discovery_url,
            "PRIMENET_PUBLIC_URL": f"http://127.0.0.1:{port}",
            key_settings[name]: key_path,
        }
        volumes = {**deployment_mount(deployment), str(secrets[name]): {"bind": key_path, "mode": "ro"}}
        started.append((run(images[name], environment=environment, volumes=volumes), port))
    for container, port in started:
        wait_healthy(container, port)


@pytest.mark.usefixtures("provider")
def test_miner_image_onboards_and_answers_health(
    run: Run, images: dict[str, str], devnet: DevnetState, deployment: Path, tmp_path: Path
) -> None:
    """`miner run` in the image: registers a fresh node under the devnet provider (staked and whitelisted by the
    fixture), publishes it to the discovery container, then serves its API."""
    _, discovery_port = start_discovery(run, images, devnet, deployment)
    provider_key = secret_file(tmp_path, "provider.key", role_account("provider").key.hex())
    node_key = secret_file(tmp_path, "node.key", Account.create().key.hex())
    port = free_port()
    environment = {
        **service_env(devnet, port),
        "PRIMENET_DISCOVERY_URL": f"http://127.0.0.1:{discovery_port}",
        "PRIMENET_PROVIDER_KEY_FILE": f"{SECRETS_DIR}/provider.key",
        "PRIMENET_NODE_KEY_FILE": f"{SECRETS_DIR}/node.key",
        "PRIMENET_VISIBLE_DEVICES": "none",
    }
    volumes = {
        **deployment_mount(deployment),
        str(provider_key): {"bind": f"{SECRETS_DIR}/provider.key", "mode": "ro"},
        str(node_key): {"bind": f"{SECRETS_DIR}/node.key", "mode": "ro"},
        DOCKER_SOCKET: {"bind": DOCKER_SOCKET, "mode": "rw"},
    }
    miner = run(
        images["miner"],
        environment=environment,
        volumes=volumes,
        group_add=[str(os.stat(DOCKER_SOCKET).st_gid)],
    )
    wait_healthy(miner, port)


def miner_check(engine: Any, image: str, devnet: DevnetState, *, with_socket: bool) -> dict[str, Any]:
    """`primenet miner check --json` in the miner image; its report (exit 1 is a report with failures)."""
    options: dict[str, Any] = {}
    if with_socket:
        options = {
            "volumes": {DOCKER_SOCKET: {"bind": DOCKER_SOCKET, "mode": "rw"}},
            "group_add": [str(os.stat(DOCKER_SOCKET).st_gid)],
        }
    name = f"primenet-test-miner-check-{uuid.uuid4().hex[:12]}"
    try:
        container = engine.containers.run(
            image,
            ["miner", "check", "--json"],
            name=name,
            detach=True,
            network_mode="host",
            environment={"PRIMENET_PORT": str(free_port()), "PRIMENET_RPC_URL": devnet.rpc_url},
            **options,
        )
        exit_code = container.wait(timeout=120)["StatusCode"]
        output = container.logs(stdout=True, stderr=False).decode()
    finally:
        with contextlib.suppress(NotFound):
            engine.containers.get(name).remove(force=True)
    assert exit_code in (0, 1), output
    report: dict[str, Any] = json.loads(output)
    return report


def test_miner_image_reports_the_engine_it_was_given(engine: Any, images: dict[str, str], devnet: DevnetState) -> None:
    report = miner_check(engine, images["miner"], devnet, with_socket=True)
    checks = {check["name"]: check for check in report["checks"]}
    host_engine = engine.version()["Version"]
    assert checks["docker"]["ok"], checks["docker"]
    assert f"Docker engine {host_engine} " in checks["docker"]["detail"]
    assert checks["storage"]["ok"], checks["storage"]  # /var/lib/primenet is the user's
    assert checks["chain-rpc"]["ok"], checks["chain-rpc"]


def test_miner_image_without_the_socket_says_so(engine: Any, images: dict[str, str], devnet: DevnetState) -> None:
    report = miner_check(engine, images["miner"], devnet, with_socket=False)
    assert "docker" in report["failures"]
    assert not report["ok"]


def test_chain_image_serves_anvil(run: Run, images: dict[str, str]) -> None:
    port = free_port()
    chain = run(
        images["chain"],
        ["--host", "127.0.0.1", "--port", str(port)],
        healthcheck={"test": ["CMD", "primenet-healthcheck", "rpc", str(port)], "interval": 1_000_000_000},
    )
    wait_container_healthy(chain)
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
    assert httpx.post(f"http://127.0.0.1:{port}", json=body, timeout=5).json()["result"] == hex(31337)


def test_redis_image_serves_with_an_append_only_file(run: Run, images: dict[str, str]) -> None:
    port = free_port()
    redis_container = run(
        images["redis"],
        ["--port", str(port), "--bind", "127.0.0.1", "--dir", "/data", "--appendonly", "yes"],
        healthcheck={"test": ["CMD", "primenet-healthcheck", "redis", str(port)], "interval": 1_000_000_000},
    )
    wait_container_healthy(redis_container)
    client = Redis(host="127.0.0.1", port=port)
    try:
        client.set("primenet-image-test", "kept")
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("dir") == {"dir": "/data"}
    finally:
        client.close()


def wait_container_healthy(container: Any, timeout_s: float = HEALTHY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        container.reload()
        if container.attrs["State"].get("Health", {}).get("Status") == "healthy":
            return
        if container.attrs["State"]["Status"] == "exited":
            break
        time.sleep(0.2)
    logs = container.logs(tail=40).decode(errors="replace")
    raise AssertionError(f"{container.image.tags} not healthy ({container.attrs['State']}):\n{logs}")


@pytest.mark.parametrize("name", ["discovery", "orchestrator", "validator", "miner", "chain", "redis"])
def test_image_runs_as_primenet_and_is_labelled(engine: Any, images: dict[str, str], name: str) -> None:
    image = engine.images.get(images[name])
    config = image.attrs["Config"]
    assert config["User"] == f"{UID}:{UID}"
    assert config["Healthcheck"]["Test"][1] == "primenet-healthcheck"
    labels = config["Labels"]
    git = shutil.which("git")
    assert git is not None, "git is needed to read the revision the labels must name"
    head = subprocess.run([git, "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert labels["org.opencontainers.image.version"] == image_version()
    assert labels["org.opencontainers.image.revision"] == head.stdout.strip()
    assert labels["org.opencontainers.image.title"] == f"primenet-{name}"
    assert labels["org.opencontainers.image.source"]
    ids = engine.containers.run(
        images[name],
        entrypoint=["sh", "-c", f"id -u; id -g; stat -c '%u %a' {SECRETS_DIR}"],
        network_mode="none",
        remove=True,
    )
    assert ids.decode().split("\n")[:3] == [str(UID), str(UID), f"{UID} 700"]


@pytest.mark.parametrize("name", SERVICES)
def test_service_image_meets_the_size_target(engine: Any, images: dict[str, str], name: str) -> None:
    size = engine.images.get(images[name]).attrs["Size"]
    assert size <= SIZE_LIMIT_BYTES, f"{images[name]} is {size / 1e6:.0f} MB"
