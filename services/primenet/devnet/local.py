"""The local devnet: a real Anvil chain and a real Redis as background processes on loopback ports.

`up` starts what is not running, waits until each server answers and records pid, port and log file in
`<state_dir>/devnet.json`; `down` stops exactly the recorded processes; `restart` stops one process (a service,
Anvil or Redis) and starts it again as `up` did. The test suite uses the same code on free ports, so integration
tests talk to the same servers a developer runs.

Persistence: the chain and the store persist together or not at all. Anvil keeps its chain in
`<state_dir>/anvil-state.json` (written every `ANVIL_STATE_INTERVAL_S` and on a clean exit, loaded on start);
Redis keeps its append-only file in `<state_dir>/redis/` (fsynced before each reply). When `up` finds the chain
fresh (no state file, or the recorded contracts are not on it), Redis data from before describes nodes and tasks
that chain never knew, so it is wiped before Redis starts.
"""

from __future__ import annotations

import asyncio
import platform
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import redis
from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from primenet.chain.deployment import Deployment
from primenet.core.errors import PrimenetError
from primenet.devnet.accounts import ROLES, role_account
from primenet.devnet.chain_setup import prepare_chain
from primenet.devnet.processes import (
    ManagedProcess,
    ProcessStartError,
    is_running,
    port_in_use,
    spawn,
    stop,
    wait_ready,
)
from primenet.devnet.services import SERVICES, LaunchConfig, ServiceLauncher, remove_task_containers

REPO_ROOT = Path(__file__).resolve().parents[3]
STATE_FILE = "devnet.json"
DEPLOYMENT_FILE = "deployment.json"
ANVIL_STATE_FILE = "anvil-state.json"
# Anvil dumps its state this often (whole seconds) and on SIGTERM; a SIGKILL loses the blocks of the last interval.
ANVIL_STATE_INTERVAL_S = 1
CORE_PROCESSES = ("anvil", "redis")  # what `restart` rebuilds from the recorded argv rather than from the services


class DevnetError(PrimenetError, RuntimeError):
    """Something the person running the devnet must fix; the message says what."""


class DevnetSettings(BaseSettings):
    """Where the devnet runs; every field is also `PRIMENET_DEVNET_<FIELD>` in the environment."""

    model_config = SettingsConfigDict(env_prefix="PRIMENET_DEVNET_", extra="ignore")

    host: str = Field("127.0.0.1", description="loopback address both servers bind")
    anvil_port: int = Field(8545, ge=1, le=65535)
    redis_port: int = Field(6379, ge=1, le=65535)
    chain_id: int = Field(31337, ge=1)
    state_dir: Path = Field(Path(".devnet"), description="state file, logs and Redis data")
    anvil_bin: str | None = Field(None, description="anvil executable (default: the npm one in contracts/)")
    redis_bin: str = Field("redis-server", description="redis-server executable")
    start_timeout_s: float = Field(20.0, gt=0)
    services: bool = Field(True, description="also run discovery, validator, orchestrator and a miner")
    discovery_port: int = Field(8089, ge=1, le=65535)
    orchestrator_port: int = Field(8090, ge=1, le=65535)
    miner_port: int = Field(8091, ge=1, le=65535)
    validator_port: int = Field(8093, ge=1, le=65535)
    heartbeat_interval_s: float = Field(
        2.0,
        gt=0,
        description="seconds between the miner's heartbeats, given to the orchestrator and the miner (snappy on a "
        "devnet; production defaults are slower); it must stay under the orchestrator's unhealthy_after_s (45)",
    )

    def ports(self) -> dict[str, int]:
        ports = {"anvil": self.anvil_port, "redis": self.redis_port}
        if self.services:
            ports |= {
                "discovery": self.discovery_port,
                "orchestrator": self.orchestrator_port,
                "miner": self.miner_port,
                "validator": self.validator_port,
            }
        return ports


class DevnetState(BaseModel):
    started_at: float
    chain_id: int
    processes: dict[str, ManagedProcess]
    deployment_file: str
    launch: LaunchConfig | None = Field(None, description="what the services were started from (None: chain only)")
    argv: dict[str, list[str]] = Field(
        default_factory=dict, description="the command lines Anvil and Redis were started with (what restart reuses)"
    )

    @property
    def rpc_url(self) -> str:
        return self.processes["anvil"].url

    @property
    def redis_url(self) -> str:
        return self.processes["redis"].url


def find_anvil(explicit: str | None = None) -> str:
    """The anvil binary: the explicit one, the npm package's native binary, or one on PATH."""
    if explicit:
        return explicit
    arch = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(), platform.machine())
    native = REPO_ROOT / f"contracts/node_modules/@foundry-rs/anvil-linux-{arch}/bin/anvil"
    if native.exists():
        return str(native)
    on_path = shutil.which("anvil")
    if on_path:
        return on_path
    raise DevnetError("anvil not found: run `make setup` (it installs Foundry's npm packages in contracts/)")


def _anvil_answers(url: str, chain_id: int) -> Callable[[], bool]:
    def check() -> bool:
        try:
            reply = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}, timeout=1.0)
            return int(reply.json()["result"], 16) == chain_id
        except (httpx.HTTPError, ValueError, KeyError):
            return False

    return check


def _redis_answers(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with redis.Redis.from_url(url, socket_timeout=1.0) as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    return check


class Devnet:
    def __init__(self, settings: DevnetSettings | None = None) -> None:
        self.settings = settings or DevnetSettings()
        self.state_dir = self.settings.state_dir.resolve()
        self.state_path = self.state_dir / STATE_FILE

    # --- reading state ---------------------------------------------------------------------------

    def recorded(self) -> DevnetState | None:
        try:
            return DevnetState.model_validate_json(self.state_path.read_text())
        except FileNotFoundError:
            return None
        except ValueError as exc:
            raise DevnetError(f"{self.state_path} is not a devnet state file ({exc}); remove it") from None

    def running(self) -> dict[str, bool]:
        """Recorded process name -> whether it still runs."""
        state = self.recorded()
        return {} if state is None else {name: is_running(proc) for name, proc in state.processes.items()}

    # --- up / down ---------------------------------------------------------------------------------

    @property
    def deployment_path(self) -> Path:
        return self.state_dir / DEPLOYMENT_FILE

    def deployment(self) -> Deployment | None:
        return Deployment.load(self.deployment_path) if self.deployment_path.exists() else None

    def up(self, progress: Callable[[str], None] = lambda _: None) -> tuple[DevnetState, bool]:
        """Start the devnet and prepare its chain; returns its state and whether anything was started."""
        state = self.recorded()
        if state is not None:
            alive = self.running()
            if alive and all(alive.values()):
                return state, False
            self.down()  # partly dead: stop the survivors and start clean
        s = self.settings
        for name, port in s.ports().items():
            if port_in_use(port, s.host):
                raise DevnetError(
                    f"port {port} on {s.host} is in use by another program, so {name} cannot start there; "
                    f"stop that program or choose another port (--{name}-port or PRIMENET_DEVNET_{name.upper()}_PORT)"
                )
        self.state_dir.mkdir(parents=True, exist_ok=True)
        started: dict[str, ManagedProcess] = {}
        argv = {"anvil": self._anvil_argv(), "redis": self._redis_argv()}
        try:
            started["anvil"] = self._start_core("anvil", argv["anvil"], s.chain_id)
            progress(f"anvil answers at {started['anvil'].url}")
            # The chain first: whether it is fresh decides whether the store's data from before may be kept.
            deployment, fresh = asyncio.run(prepare_chain(started["anvil"].url, self.deployment(), progress))
            if fresh:
                deployment.save(self.deployment_path)
                if self._wipe_redis_data():
                    progress(
                        f"the chain is fresh, so the Redis data of an earlier run ({self.redis_dir}) was wiped: "
                        "its nodes and tasks belong to a chain that is gone"
                    )
            started["redis"] = self._start_core("redis", argv["redis"], s.chain_id)
            progress(f"redis answers at {started['redis'].url}")
            launch = self._launch_config(started["anvil"].url) if s.services else None
            if launch is not None:
                started |= self._launcher(launch, progress).start_all()
        except Exception:
            for proc in reversed(started.values()):
                stop(proc)
            raise
        state = DevnetState(
            started_at=time.time(),
            chain_id=s.chain_id,
            processes=started,
            deployment_file=str(self.deployment_path),
            launch=launch,
            argv=argv,
        )
        self._save(state)
        return state, True

    def _save(self, state: DevnetState) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(state.model_dump_json(indent=2))
        tmp.replace(self.state_path)

    def down(self) -> list[str]:
        """Stop the recorded processes and forget them; returns the names of those that were running."""
        state = self.recorded()
        if state is None:
            return []
        # Services before the chain and Redis they use; the names come back in start order.
        stopped = [name for name, proc in reversed(state.processes.items()) if stop(proc)][::-1]
        if "miner" in state.processes:
            remove_task_containers(role_account("node").address)
        self.state_path.unlink(missing_ok=True)
        return stopped

    def restart(
        self, name: str, *, kill: bool = False, progress: Callable[[str], None] = lambda _: None
    ) -> RestartReport:
        """Stop one recorded process (SIGTERM, then SIGKILL after a grace; SIGKILL at once with `kill`, as a crash
        would) and start it again with the command line, environment and log file that `up` gave it; wait until
        it answers (a service's /health, Anvil's chain id, Redis's PING) and record its new pid.

        Anvil comes back with the chain of its state file (on SIGTERM it dumps its state first; after a SIGKILL
        the blocks mined since the last periodic dump, at most `ANVIL_STATE_INTERVAL_S`, are lost). Redis comes
        back with its append-only file, which holds every write it acknowledged.
        """
        if name not in (*CORE_PROCESSES, *SERVICES):
            choices = ", ".join((*CORE_PROCESSES, *SERVICES))
            raise DevnetError(f"{name!r} is not a process that restart manages; choose one of {choices}")
        state = self.recorded()
        if state is None:
            raise DevnetError(f"no devnet is running (no state in {self.state_path}): start one with `devnet up`")
        core = name in CORE_PROCESSES
        if name not in state.processes or (core and name not in state.argv) or (not core and state.launch is None):
            raise DevnetError(
                f"the devnet in {self.state_dir} runs no {name} that restart can rebuild (started with --chain-only, "
                "or by an older primenet: run `primenet devnet down`, then `up`)"
            )
        old = state.processes[name]
        try:
            if core:
                was_running = stop(old, kill=kill)
                how = "killed (SIGKILL)" if kill else "stopped"
                progress(f"{name} (pid {old.pid}) {how}" if was_running else f"{name} was not running")
                new = self._start_core(name, state.argv[name], state.chain_id)
                progress(f"{name} answers at {new.url}")
            else:
                assert state.launch is not None
                new, was_running = self._launcher(state.launch, progress).restart(old, kill=kill)
        except ProcessStartError as exc:
            raise DevnetError(str(exc)) from None
        # Re-read: only this entry changes, whatever else happened to the file while the process started.
        current = self.recorded() or state
        current.processes[name] = new
        self._save(current)
        return RestartReport(
            name=name,
            previous_pid=old.pid,
            was_running=was_running,
            killed=kill and was_running,
            pid=new.pid,
            url=new.url,
            log=new.log,
        )

    # --- the servers -------------------------------------------------------------------------------

    def _launch_config(self, rpc_url: str) -> LaunchConfig:
        s = self.settings
        return LaunchConfig(
            host=s.host,
            ports=s.ports(),
            rpc_url=rpc_url,
            redis_port=s.redis_port,
            deployment_file=str(self.deployment_path),
            heartbeat_interval_s=s.heartbeat_interval_s,
        )

    def _launcher(self, launch: LaunchConfig, progress: Callable[[str], None]) -> ServiceLauncher:
        return ServiceLauncher(
            launch, state_dir=self.state_dir, timeout_s=self.settings.start_timeout_s, progress=progress
        )

    @property
    def anvil_state_path(self) -> Path:
        return self.state_dir / ANVIL_STATE_FILE

    @property
    def redis_dir(self) -> Path:
        return self.state_dir / "redis"

    def _anvil_argv(self) -> list[str]:
        s = self.settings
        return [
            find_anvil(s.anvil_bin),
            "--host",
            s.host,
            "--port",
            str(s.anvil_port),
            "--chain-id",
            str(s.chain_id),
            # Load the chain from this file when it exists, dump it there on exit and every interval.
            "--state",
            str(self.anvil_state_path),
            "--state-interval",
            str(ANVIL_STATE_INTERVAL_S),
        ]

    def _redis_argv(self) -> list[str]:
        s = self.settings
        if shutil.which(s.redis_bin) is None:
            raise DevnetError(f"{s.redis_bin} not found: run `make setup` (it installs redis-server)")
        # AOF on and fsynced before each reply, as in production: a Redis restart, or the host's crash, keeps
        # what the services acknowledged (bench/heartbeat.py measures what `always` costs against `everysec`).
        return [
            s.redis_bin,
            "--bind",
            s.host,
            "--port",
            str(s.redis_port),
            "--dir",
            str(self.redis_dir),
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--protected-mode",
            "yes",
        ]

    def start_anvil(self) -> ManagedProcess:
        """Anvil alone (the benchmarks' chain), with its state file in the state folder."""
        return self._start_core("anvil", self._anvil_argv(), self.settings.chain_id)

    def start_redis(self) -> ManagedProcess:
        """Redis alone (the benchmarks' store), with its append-only file in the state folder."""
        return self._start_core("redis", self._redis_argv(), self.settings.chain_id)

    def _wipe_redis_data(self) -> bool:
        """Remove Redis's data folder (before Redis starts); returns whether it held any data."""
        had_data = self.redis_dir.exists() and any(self.redis_dir.iterdir())
        shutil.rmtree(self.redis_dir, ignore_errors=True)
        return had_data

    def _start_core(self, name: str, argv: list[str], chain_id: int) -> ManagedProcess:
        """Start Anvil or Redis from `argv` (its port and address are read back from it) and wait until it answers."""
        host = argv[argv.index("--host" if name == "anvil" else "--bind") + 1]
        port = int(argv[argv.index("--port") + 1])
        if name == "anvil":
            url = f"http://{host}:{port}"
            return self._start(name, argv, port, url, _anvil_answers(url, chain_id))
        self.redis_dir.mkdir(parents=True, exist_ok=True)
        url = f"redis://{host}:{port}/0"
        return self._start(name, argv, port, url, _redis_answers(url))

    def _start(self, name: str, cmd: list[str], port: int, url: str, ready: Callable[[], bool]) -> ManagedProcess:
        log_path = self.state_dir / f"{name}.log"
        try:
            process = spawn(cmd, log_path)
        except OSError as exc:
            raise DevnetError(f"cannot start {name} ({cmd[0]}): {exc}") from None
        try:
            wait_ready(process, ready, name=name, log_path=log_path, timeout_s=self.settings.start_timeout_s)
        except ProcessStartError as exc:
            process.kill()
            process.wait()
            raise DevnetError(str(exc)) from None
        return ManagedProcess.of(name, process, port=port, url=url, log=log_path)


class ProcessReport(BaseModel):
    name: str
    pid: int
    port: int
    url: str
    log: str
    running: bool


class RestartReport(BaseModel):
    """What `primenet devnet restart` did (printed as JSON with --json)."""

    name: str
    previous_pid: int
    was_running: bool = Field(description="whether the recorded process still ran (False: it had already died)")
    killed: bool = Field(description="stopped with SIGKILL at once, as a crash would")
    pid: int
    url: str
    log: str


class RoleReport(BaseModel):
    role: str
    address: str
    dev_account: int = Field(description="index of Anvil's dev account whose (public) key plays the role")


class DevnetReport(BaseModel):
    """What `primenet devnet status` shows (and prints as JSON with --json)."""

    running: bool
    chain_id: int | None = None
    started_at: float | None = None
    processes: dict[str, ProcessReport] = Field(default_factory=dict)
    deployment_file: str | None = None
    contracts: dict[str, str] = Field(default_factory=dict)
    roles: list[RoleReport] = Field(default_factory=list)


def report(devnet: Devnet) -> DevnetReport:
    state = devnet.recorded()
    if state is None:
        return DevnetReport(running=False)
    alive = devnet.running()
    deployment = devnet.deployment()
    return DevnetReport(
        running=all(alive.values()),
        chain_id=state.chain_id,
        started_at=state.started_at,
        processes={
            name: ProcessReport(**proc.model_dump(exclude={"cmdline"}), running=alive[name])
            for name, proc in state.processes.items()
        },
        deployment_file=state.deployment_file,
        contracts=deployment.contracts if deployment else {},
        roles=[RoleReport(role=role, address=role_account(role).address, dev_account=i) for role, i in ROLES.items()],
    )
