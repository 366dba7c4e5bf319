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
from eth_account.signers.local import LocalAccount
from pydantic import BaseModel, Field

from primenet.chain.contracts import Network
from primenet.chain.deployment import Deployment
from primenet.devnet.accounts import role_account
from primenet.devnet.processes import ManagedProcess, ProcessStartError, answers_health, spawn, stop, wait_ready
from primenet.miner.runner import LABEL_NODE

PRIMENET = str(Path(sys.executable).with_name("primenet"))
SERVICES = ("discovery", "validator", "orchestrator", "miner")  # the managed service processes, in start order


class LaunchConfig(BaseModel):
    """What the services' command lines and environments are built from.

    `up` records it in the state file, so `restart` rebuilds a service exactly as `up` started it, whatever the
    settings of the shell that restarts it say.
    """

    host: str
    ports: dict[str, int]
    rpc_url: str
    redis_port: int
    deployment_file: str
    heartbeat_interval_s: float = Field(gt=0)
    pool_id: int = Field(0, ge=0, description="the pool the miner offers itself to (the devnet's is pool 0)")


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


class ServiceLauncher:
    def __init__(
        self, config: LaunchConfig, *, state_dir: Path, timeout_s: float, progress: Callable[[str], None]
    ) -> None:
        self.config = config
        self.state_dir = state_dir
        self.timeout_s = timeout_s
        self.progress = progress
        self.keys = state_dir / "keys"

    def url(self, service: str) -> str:
        return f"http://{self.config.host}:{self.config.ports[service]}"

    def _env(self, service: str, db: int, **extra: str) -> dict[str, str]:
        c = self.config
        return {
            "PRIMENET_HOST": c.host,
            "PRIMENET_PORT": str(c.ports[service]),
            "PRIMENET_RPC_URL": c.rpc_url,
            "PRIMENET_REDIS_URL": f"redis://{c.host}:{c.redis_port}/{db}",
            "PRIMENET_DEPLOYMENT_FILE": c.deployment_file,
            "PRIMENET_DISCOVERY_URL": self.url("discovery"),
            "PRIMENET_LOG_LEVEL": "info",
            # The devnet's miners run on this machine and publish a loopback IP; a real network refuses them.
            "PRIMENET_ALLOW_LOOPBACK_NODES": "true",
            **extra,
        }

    def command(self, service: str) -> tuple[list[str], dict[str, str]]:
        """`service`'s command line (`primenet` and its arguments) and the environment added to it.

        The one place that says how each service is started: `start_all` and `restart` both come here.
        """
        heartbeat = str(self.config.heartbeat_interval_s)
        if service == "discovery":
            return [PRIMENET, "discovery"], self._env(service, 1)
        if service == "validator":
            key = _key_file(self.keys, "validator", role_account("validator"))
            env = self._env(service, 2, PRIMENET_VALIDATOR_KEY_FILE=str(key), PRIMENET_RETRY_BASE_S="5")
            return [PRIMENET, "validator", "run"], env
        if service == "orchestrator":
            env = self._env(
                service,
                3,
                PRIMENET_MANAGER_KEY_FILE=str(_key_file(self.keys, "orchestrator", role_account("orchestrator"))),
                PRIMENET_ADMIN_TOKEN=admin_token(self.state_dir),
                PRIMENET_PUBLIC_URL=self.url(service),
                PRIMENET_HEARTBEAT_INTERVAL_S=heartbeat,
            )
            return [PRIMENET, "orchestrator"], env
        if service == "miner":
            miner_dir = self.state_dir / "miner"
            env = self._env(
                service,
                4,
                PRIMENET_PROVIDER_KEY_FILE=str(_key_file(self.keys, "provider", role_account("provider"))),
                PRIMENET_NODE_KEY_FILE=str(_key_file(self.keys, "node", role_account("node"))),
                PRIMENET_STORAGE_PATH=str(miner_dir / "storage"),
                PRIMENET_STATE_DIR=str(miner_dir),
                PRIMENET_PUBLIC_IP=self.config.host,
                PRIMENET_HEARTBEAT_INTERVAL_S=heartbeat,
                PRIMENET_WHITELIST_POLL_S="1",
                PRIMENET_POOL_ID=str(self.config.pool_id),
                # Our engines run without a bridge (--bridge=none): the devnet's tasks share the host's network.
                PRIMENET_TASK_NETWORK="host",
            )
            return [PRIMENET, "miner", "run"], env
        raise ValueError(f"unknown service {service!r}; the services are {', '.join(SERVICES)}")

    def _ready_timeout_s(self, service: str) -> float:
        # The miner's API comes up only once its node is registered on chain and its record is in discovery.
        return self.timeout_s * 3 if service == "miner" else self.timeout_s

    def start(self, service: str, *, wait: bool = True) -> ManagedProcess:
        """Start `service` with its log in `<state_dir>/<service>.log`; with `wait`, until it answers /health."""
        log = self.state_dir / f"{service}.log"
        cmd, env = self.command(service)
        process = spawn(cmd, log, env=env)
        if wait:
            try:
                wait_ready(
                    process,
                    answers_health(self.url(service)),
                    name=service,
                    log_path=log,
                    timeout_s=self._ready_timeout_s(service),
                )
            except ProcessStartError:
                process.kill()
                process.wait()
                raise
        self.progress(f"{service} {'answers' if wait else 'started'} at {self.url(service)}")
        return ManagedProcess.of(service, process, port=self.config.ports[service], url=self.url(service), log=log)

    def start_all(self) -> dict[str, ManagedProcess]:
        started: dict[str, ManagedProcess] = {}
        try:
            for service in SERVICES:
                started[service] = self.start_miner() if service == "miner" else self.start(service)
        except Exception:
            for process in reversed(started.values()):
                stop(process)
            raise
        return started

    def restart(self, recorded: ManagedProcess, *, kill: bool = False) -> tuple[ManagedProcess, bool]:
        """Stop the recorded process of a service and start it again as `start_all` did; wait for its /health.

        SIGTERM then SIGKILL after a grace, or SIGKILL at once with `kill` (a crash). The recorded pid is signalled
        only while it still runs the recorded command line. Returns the new record and whether the old one ran.
        """
        service = recorded.name
        cmd, _ = self.command(service)
        # The kernel shows a script as `<interpreter> <script> <args>`: the recorded line ends with what we start.
        if recorded.cmdline[-len(cmd) :] != cmd:
            raise ProcessStartError(
                f"{service} was started as `{' '.join(recorded.cmdline)}`, but this primenet would start "
                f"`{' '.join(cmd)}`; restart it with the primenet that ran `devnet up`, or run `devnet down` and `up`"
            )
        was_running = stop(recorded, kill=kill)
        how = "killed (SIGKILL)" if kill else "stopped"
        self.progress(f"{service} (pid {recorded.pid}) {how}" if was_running else f"{service} was not running")
        if service == "miner":
            self.progress("the miner's task containers keep running; the new miner re-attaches to them")
        return self.start(service), was_running

    def start_miner(self) -> ManagedProcess:
        """Start the miner, whitelist its provider once it registered (as the federator), wait for its /health.

        Needs only `rpc_url`, `deployment_file` and the discovery and miner ports of the config, so it also puts a
        miner in front of a coordinator that runs elsewhere (the coordinator stack's test does).
        """
        process = self.start("miner", wait=False)
        log = Path(process.log)
        try:
            asyncio.run(self._whitelist_provider())
            deadline = time.monotonic() + self._ready_timeout_s("miner")
            check = answers_health(self.url("miner"))
            while not check():
                if time.monotonic() > deadline:
                    raise ProcessStartError(f"the miner did not come up; see {log}")
                time.sleep(0.2)
        except Exception:  # a failed whitelist or wait: the miner is not recorded yet, so stop it here
            stop(process)
            raise
        self.progress(f"miner registered and answering at {self.url('miner')}")
        return process

    async def _whitelist_provider(self) -> None:
        """Wait until the miner registered its provider, then whitelist it as the federator."""
        provider = role_account("provider").address
        deployment = Deployment.load(Path(self.config.deployment_file))
        async with Network.connect(self.config.rpc_url, deployment) as network:
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
        for container in client.containers.list(all=True, filters={"label": LABEL_NODE}, ignore_removed=True):
            if container.labels.get(LABEL_NODE, "").lower() == node.lower():
                container.remove(force=True)
