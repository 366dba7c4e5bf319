"""The devnet's services as real processes: discovery, validator, orchestrator and one miner.

Each runs as `primenet <service>` with its settings in the environment and its key in a 0600 file under the
state folder (Anvil's public dev keys: never use them elsewhere). Each service gets its own Redis database.
The miner registers its provider with stake and then waits for the whitelist; the federator's whitelisting,
done here, is the one manual step of the reference flow that the devnet plays for the operator.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sys
import time
from collections.abc import Callable
from pathlib import Path

import docker
import docker.errors
import httpx
from eth_account.signers.local import LocalAccount

from primenet.chain.contracts import Network
from primenet.chain.deployment import Deployment
from primenet.devnet.accounts import role_account
from primenet.devnet.processes import ManagedProcess, ProcessStartError, spawn, stop, wait_ready
from primenet.miner.runner import LABEL_NODE

PRIMENET = str(Path(sys.executable).with_name("primenet"))
DEMO_HEARTBEAT_S = 2.0  # snappy on a devnet; production defaults are slower


def _key_file(folder: Path, name: str, account: LocalAccount) -> Path:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / f"{name}.key"
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(account.key.hex())
    return path


def admin_token(state_dir: Path) -> str:
    """The devnet orchestrator's admin token, made once and kept in a 0600 file."""
    path = state_dir / "admin.token"
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(24))
    return path.read_text().strip()


def _healthy(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return httpx.get(f"{url}/health", timeout=1.0).status_code < 500
        except httpx.HTTPError:
            return False

    return check


class ServiceLauncher:
    def __init__(
        self,
        *,
        state_dir: Path,
        host: str,
        ports: dict[str, int],
        rpc_url: str,
        redis_port: int,
        deployment_file: Path,
        timeout_s: float,
        progress: Callable[[str], None],
    ) -> None:
        self.state_dir = state_dir
        self.host = host
        self.ports = ports
        self.rpc_url = rpc_url
        self.redis_port = redis_port
        self.deployment_file = deployment_file
        self.timeout_s = timeout_s
        self.progress = progress
        self.keys = state_dir / "keys"

    def url(self, service: str) -> str:
        return f"http://{self.host}:{self.ports[service]}"

    def _env(self, service: str, db: int, **extra: str) -> dict[str, str]:
        return {
            "PRIMENET_HOST": self.host,
            "PRIMENET_PORT": str(self.ports[service]),
            "PRIMENET_RPC_URL": self.rpc_url,
            "PRIMENET_REDIS_URL": f"redis://{self.host}:{self.redis_port}/{db}",
            "PRIMENET_DEPLOYMENT_FILE": str(self.deployment_file),
            "PRIMENET_DISCOVERY_URL": self.url("discovery"),
            "PRIMENET_LOG_LEVEL": "info",
            **extra,
        }

    def _start(self, service: str, args: list[str], env: dict[str, str], *, wait: bool = True) -> ManagedProcess:
        log = self.state_dir / f"{service}.log"
        cmd = [PRIMENET, *args]
        process = spawn(cmd, log, env=env)
        if wait:
            try:
                wait_ready(process, _healthy(self.url(service)), name=service, log_path=log, timeout_s=self.timeout_s)
            except ProcessStartError:
                process.kill()
                process.wait()
                raise
        self.progress(f"{service} {'answers' if wait else 'started'} at {self.url(service)}")
        return ManagedProcess.of(service, process, port=self.ports[service], url=self.url(service), log=log)

    def start_all(self) -> dict[str, ManagedProcess]:
        started: dict[str, ManagedProcess] = {}
        try:
            started["discovery"] = self._start("discovery", ["discovery"], self._env("discovery", 1))
            validator_key = _key_file(self.keys, "validator", role_account("validator"))
            started["validator"] = self._start(
                "validator",
                ["validator", "run"],
                self._env("validator", 2, PRIMENET_VALIDATOR_KEY_FILE=str(validator_key), PRIMENET_RETRY_BASE_S="5"),
            )
            manager_key = _key_file(self.keys, "orchestrator", role_account("orchestrator"))
            started["orchestrator"] = self._start(
                "orchestrator",
                ["orchestrator"],
                self._env(
                    "orchestrator",
                    3,
                    PRIMENET_MANAGER_KEY_FILE=str(manager_key),
                    PRIMENET_ADMIN_TOKEN=admin_token(self.state_dir),
                    PRIMENET_PUBLIC_URL=self.url("orchestrator"),
                    PRIMENET_HEARTBEAT_INTERVAL_S=str(DEMO_HEARTBEAT_S),
                ),
            )
            started["miner"] = self._start_miner()
        except Exception:
            for process in reversed(started.values()):
                stop(process)
            raise
        return started

    def _start_miner(self) -> ManagedProcess:
        miner_dir = self.state_dir / "miner"
        env = self._env(
            "miner",
            4,
            PRIMENET_PROVIDER_KEY_FILE=str(_key_file(self.keys, "provider", role_account("provider"))),
            PRIMENET_NODE_KEY_FILE=str(_key_file(self.keys, "node", role_account("node"))),
            PRIMENET_STORAGE_PATH=str(miner_dir / "storage"),
            PRIMENET_STATE_DIR=str(miner_dir),
            PRIMENET_PUBLIC_IP=self.host,
            PRIMENET_HEARTBEAT_INTERVAL_S=str(DEMO_HEARTBEAT_S),
            PRIMENET_WHITELIST_POLL_S="1",
        )
        process = self._start("miner", ["miner", "run"], env, wait=False)
        asyncio.run(self._whitelist_provider())
        log = Path(process.log)
        try:
            # The miner's API comes up once its node is registered and its record is in discovery.
            deadline = time.monotonic() + self.timeout_s * 3
            check = _healthy(self.url("miner"))
            while not check():
                if time.monotonic() > deadline:
                    raise ProcessStartError(f"the miner did not come up; see {log}")
                time.sleep(0.2)
        except ProcessStartError:
            stop(process)
            raise
        self.progress(f"miner registered and answering at {self.url('miner')}")
        return process

    async def _whitelist_provider(self) -> None:
        """Wait until the miner registered its provider, then whitelist it as the federator."""
        provider = role_account("provider").address
        async with Network.connect(self.rpc_url, Deployment.load(self.deployment_file)) as network:
            deadline = time.monotonic() + self.timeout_s * 3
            while not (info := await network.provider(provider)).is_registered:
                if time.monotonic() > deadline:
                    raise ProcessStartError(f"the miner did not register its provider; see {self.state_dir}/miner.log")
                await asyncio.sleep(0.3)
            if not info.is_whitelisted:
                await network.whitelist_provider(network.transactor(role_account("federator")), provider)
                self.progress(f"provider {provider} whitelisted by the federator")


def remove_task_containers(node: str) -> None:
    """The demo miner's task containers outlive the miner by design (a restarted miner re-attaches): `down`
    removes them explicitly. Nothing to do when Docker is not reachable."""
    try:
        client = docker.from_env()
    except docker.errors.DockerException:
        return
    with contextlib.closing(client):
        for container in client.containers.list(all=True, filters={"label": LABEL_NODE}):
            if container.labels.get(LABEL_NODE, "").lower() == node.lower():
                container.remove(force=True)
