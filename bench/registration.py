"""Registration to Healthy: from a miner's first transaction to its first Healthy heartbeat, over N real miners.

Real throughout and local: a private Anvil with the devnet's contracts (pool 0 managed by the orchestrator key), a
private Redis, `primenet discovery`, `primenet validator run` and `primenet orchestrator` as their own processes
with their default timers (only ports, URLs, keys and the devnet's loopback allowance are set), and N
`primenet miner run` processes, each with its own provider and node key and its own loopback address, on the
CPU (no GPU, no Docker task: their Docker endpoint is a socket that does not exist). Each provider is funded,
registered with the stake one node needs and whitelisted beforehand (the whitelist is the federator's manual
step), so a miner's first transaction is its `addNode`; its time is when the miner prints "adding node" (just
before sending it).

Miners start `--at-once` at a time, the next as soon as one is Healthy. Marks, each polled every `--poll` s:
  registered   the node is on chain (addNode mined)
  validated    the validator's challenge passed and validateNode was mined
  in pool      the miner, invited by the orchestrator, joined pool 0 on chain
  healthy      the orchestrator reports the node Healthy (`GET /nodes/{node}`): its first heartbeat was taken
Reported: p50 and p95 of first transaction -> Healthy over the N nodes (goal: p50 at most 3 s; the reference's
5-10 s loops and 10 s beats put it at 20-40 s), each phase's p50/p95, and the miner's own start (process start to
its first transaction: imports and chain reads, not part of the figure).

    .venv/bin/python bench/registration.py [-n 20] [--at-once 2] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account
from eth_account.signers.local import LocalAccount
from rich.console import Console
from rich.table import Table
from web3.types import RPCEndpoint

from primenet.chain.contracts import Network
from primenet.chain.deployment import Deployment
from primenet.devnet.accounts import role_account
from primenet.devnet.chain_setup import prepare_chain
from primenet.devnet.local import Devnet, DevnetSettings
from primenet.devnet.processes import ManagedProcess, answers_health, free_port, spawn, stop, wait_ready
from results import record

BENCH = "registration.py"
PRIMENET = str(Path(sys.executable).with_name("primenet"))
TOKEN = secrets.token_urlsafe(24)  # the orchestrator's admin token for this run
TARGET_P50_S = 3.0
MARKS = ("tx", "registered", "validated", "in_pool", "healthy")
PHASES = (
    ("register", "tx", "registered"),
    ("validate", "registered", "validated"),
    ("invite and join", "validated", "in_pool"),
    ("first heartbeat", "in_pool", "healthy"),
)


@dataclass
class Run:
    """One miner: seconds since its process started at which each mark was first seen."""

    node: str
    marks: dict[str, float] = field(default_factory=dict)

    def mark(self, name: str, at: float) -> None:
        self.marks.setdefault(name, at)

    def span(self, first: str, last: str) -> float | None:
        if first in self.marks and last in self.marks:
            return self.marks[last] - self.marks[first]
        return None


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def key_file(folder: Path, name: str, account: LocalAccount) -> Path:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / f"{name}.key"
    path.touch(mode=0o600)
    path.write_text(account.key.hex())
    return path


async def prepare_providers(rpc_url: str, deployment: Deployment, providers: list[LocalAccount]) -> None:
    """Fund each provider (ETH and AI), register it with the stake of one CPU node, whitelist it."""
    federator = role_account("federator")
    async with Network.connect(rpc_url, deployment) as network:
        fed = network.transactor(federator)
        for provider in providers:
            await network.w3.provider.make_request(RPCEndpoint("anvil_setBalance"), [provider.address, hex(10**20)])
            stake = await network.minimum_stake(provider.address, 1)
            await network.mint(fed, provider.address, stake)
            await network.register_provider(network.transactor(provider), stake)
            await network.whitelist_provider(fed, provider.address)


class Services:
    """Discovery, validator and orchestrator as processes, default timers, on free ports."""

    def __init__(self, state: Path, rpc_url: str, redis_url: str, deployment_file: Path) -> None:
        self.state = state
        self.rpc_url = rpc_url
        self.redis_url = redis_url.rstrip("/")
        self.deployment_file = deployment_file
        self.ports = {name: free_port() for name in ("discovery", "validator", "orchestrator")}
        self.processes: list[ManagedProcess] = []

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def env(self, name: str, db: int, **extra: str) -> dict[str, str]:
        return {
            "PRIMENET_HOST": "127.0.0.1",
            "PRIMENET_PORT": str(self.ports[name]),
            "PRIMENET_RPC_URL": self.rpc_url,
            "PRIMENET_REDIS_URL": f"{self.redis_url}/{db}",
            "PRIMENET_DEPLOYMENT_FILE": str(self.deployment_file),
            "PRIMENET_DISCOVERY_URL": self.url("discovery"),
            "PRIMENET_LOG_LEVEL": "info",
            "PRIMENET_ALLOW_LOOPBACK_NODES": "true",  # the miners publish 127.0.0.1
            **extra,
        }

    def start(self) -> None:
        keys = self.state / "keys"
        commands = {
            "discovery": ([PRIMENET, "discovery"], self.env("discovery", 1)),
            "validator": (
                [PRIMENET, "validator", "run"],
                self.env(
                    "validator",
                    2,
                    PRIMENET_VALIDATOR_KEY_FILE=str(key_file(keys, "validator", role_account("validator"))),
                ),
            ),
            "orchestrator": (
                [PRIMENET, "orchestrator"],
                self.env(
                    "orchestrator",
                    3,
                    PRIMENET_MANAGER_KEY_FILE=str(key_file(keys, "orchestrator", role_account("orchestrator"))),
                    PRIMENET_ADMIN_TOKEN=TOKEN,
                    PRIMENET_PUBLIC_URL=self.url("orchestrator"),
                ),
            ),
        }
        for name, (cmd, env) in commands.items():
            log = self.state / f"{name}.log"
            process = spawn(cmd, log, env=env)
            self.processes.append(ManagedProcess.of(name, process, port=self.ports[name], url=self.url(name), log=log))
            wait_ready(process, answers_health(self.url(name)), name=name, log_path=log, timeout_s=60)

    def stop(self) -> None:
        for process in reversed(self.processes):
            stop(process)


async def watch(
    run: Run, network: Network, http: httpx.AsyncClient, orchestrator: str, start: float, poll_s: float
) -> None:
    """Poll the chain and the orchestrator until the node is Healthy, marking each step as first seen."""
    while "healthy" not in run.marks:
        now = time.monotonic() - start
        if "validated" not in run.marks:
            info = await network.node(run.node)
            if info is not None:
                run.mark("registered", now)
                if info.is_validated:
                    run.mark("validated", now)
        elif "in_pool" not in run.marks and await network.node_pool(run.node) == 0:
            run.mark("in_pool", now)
        if "in_pool" in run.marks:
            reply = await http.get(f"{orchestrator}/nodes/{run.node}", headers={"Authorization": f"Bearer {TOKEN}"})
            if reply.status_code == 200 and reply.json().get("status") == "healthy":
                run.mark("healthy", time.monotonic() - start)
                return
        await asyncio.sleep(poll_s)


async def one_miner(
    index: int,
    provider: LocalAccount,
    services: Services,
    network: Network,
    readers: set[asyncio.Task[None]],
    *,
    poll_s: float,
    timeout_s: float,
) -> tuple[Run, asyncio.subprocess.Process]:
    """Start one miner and follow it to Healthy (or the timeout); it keeps running (and beating) afterwards."""
    node = Account.create()
    folder = services.state / f"miner{index}"
    folder.mkdir(mode=0o700)
    # One host per miner: its own loopback address (discovery allows one active node behind an IP).
    host = f"127.0.{1 + index // 250}.{2 + index % 250}"
    env = {
        **os.environ,
        **services.env("discovery", 4),
        "PRIMENET_HOST": host,
        "PRIMENET_PORT": str(free_port(host)),
        "PRIMENET_PROVIDER_KEY_FILE": str(key_file(folder, "provider", provider)),
        "PRIMENET_NODE_KEY_FILE": str(key_file(folder, "node", node)),
        "PRIMENET_STORAGE_PATH": str(folder / "storage"),
        "PRIMENET_STATE_DIR": str(folder),
        "PRIMENET_PUBLIC_IP": host,
        "PRIMENET_POOL_ID": "0",
        "DOCKER_HOST": f"unix://{folder}/no-docker.sock",  # no task runs here: never touch this host's dockerd
        "PYTHONUNBUFFERED": "1",
    }
    run = Run(node.address.lower())
    start = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        PRIMENET, "miner", "run", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )

    async def read_output() -> None:
        assert process.stdout is not None
        with (folder / "miner.log").open("wb") as log:
            async for line in process.stdout:
                if b"adding node" in line:
                    run.mark("tx", time.monotonic() - start)
                log.write(line)
                log.flush()

    readers.add(asyncio.create_task(read_output()))  # kept reading until the miner stops
    async with httpx.AsyncClient(timeout=5.0) as http:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(watch(run, network, http, services.url("orchestrator"), start, poll_s), timeout_s)
    return run, process


async def measure(
    services: Services,
    providers: list[LocalAccount],
    deployment: Deployment,
    args: argparse.Namespace,
    console: Console,
) -> list[Run]:
    """Every miner, `args.at_once` at a time; all of them stopped (SIGTERM) before it returns."""
    runs: list[Run] = []
    processes: list[asyncio.subprocess.Process] = []
    readers: set[asyncio.Task[None]] = set()
    slots = asyncio.Semaphore(args.at_once)

    async def one(index: int, provider: LocalAccount, network: Network) -> None:
        async with slots:
            run, process = await one_miner(
                index, provider, services, network, readers, poll_s=args.poll, timeout_s=args.timeout
            )
            runs.append(run)
            processes.append(process)
            total = run.span("tx", "healthy")
            said = (
                f"first transaction -> Healthy {total:.2f} s"
                if total is not None
                else f"[red]not Healthy[/] {run.marks}"
            )
            console.print(f"miner {index + 1:>2}: {said}")

    try:
        async with Network.connect(services.rpc_url, deployment) as network:
            await asyncio.gather(*(one(i, provider, network) for i, provider in enumerate(providers)))
    finally:
        for process in processes:
            if process.returncode is None:
                process.terminate()
        for process in processes:
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()
        await asyncio.gather(*readers, return_exceptions=True)
    return runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=20, help="miners, each its own process, provider and node (20)")
    parser.add_argument("--at-once", type=int, default=2, help="miners starting at the same time (2)")
    parser.add_argument("--poll", type=float, default=0.05, help="how often the chain and orchestrator are read, s")
    parser.add_argument("--timeout", type=float, default=120.0, help="a miner not Healthy by then counts as failed")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON as well")
    parser.add_argument("--logs", type=Path, help="keep the services' and miners' logs in this folder")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    console = Console(width=max(120, Console().width))
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        if args.logs is not None:
            args.logs.mkdir(parents=True, exist_ok=True)
            state = Path(tempfile.mkdtemp(dir=args.logs))
            console.print(f"logs in {state}")
        devnet = Devnet(DevnetSettings(state_dir=state, anvil_port=free_port(), redis_port=free_port()))
        anvil, redis = devnet.start_anvil(), devnet.start_redis()
        services: Services | None = None
        try:
            deployment, _ = asyncio.run(prepare_chain(anvil.url, None, lambda _: None))
            deployment.save(state / "deployment.json")
            providers = [Account.create() for _ in range(args.n)]
            asyncio.run(prepare_providers(anvil.url, deployment, providers))
            services = Services(state, anvil.url, redis.url, state / "deployment.json")
            services.start()
            console.print(f"services up; {args.n} miners, {args.at_once} at a time")
            runs = asyncio.run(measure(services, providers, deployment, args, console))
        finally:
            if services is not None:
                services.stop()
            stop(redis)
            stop(anvil)
    return report(runs, args, console)


def report(runs: list[Run], args: argparse.Namespace, console: Console) -> int:
    totals = [t for run in runs if (t := run.span("tx", "healthy")) is not None]
    failed = len(runs) - len(totals)
    table = Table(title=f"registration to Healthy, {args.n} miners, {args.at_once} at a time ({os.cpu_count()} CPUs)")
    for column in ("measure", "p50", "p95", "target", "met"):
        table.add_column(column)
    figures: dict[str, Any] = {"n": args.n, "failed": failed}
    if totals:
        p50, p95 = quantile(totals, 0.5), quantile(totals, 0.95)
        met = p50 <= TARGET_P50_S and failed == 0
        table.add_row(
            "first transaction -> Healthy",
            f"{p50:.2f} s",
            f"{p95:.2f} s",
            f"p50 <= {TARGET_P50_S:g} s",
            "[green]yes[/]" if met else "[red]no[/]",
        )
        figures["total"] = {"p50": p50, "p95": p95, "mean": statistics.fmean(totals)}
        record(
            BENCH,
            f"first transaction -> Healthy, {args.n} miners ({failed} not Healthy), default timers",
            f"p50 {p50:.2f} s, p95 {p95:.2f} s",
            f"p50 at most {TARGET_P50_S:g} s (reference: 20-40 s)",
        )
    for name, first, last in PHASES:
        spans = [s for run in runs if (s := run.span(first, last)) is not None]
        if spans:
            p50, p95 = quantile(spans, 0.5), quantile(spans, 0.95)
            table.add_row(f"  {name}", f"{p50:.2f} s", f"{p95:.2f} s", "", "")
            figures[name] = {"p50": p50, "p95": p95}
            record(BENCH, f"phase: {name}", f"p50 {p50:.2f} s, p95 {p95:.2f} s")
    starts = [run.marks["tx"] for run in runs if "tx" in run.marks]
    if starts:
        table.add_row(
            "(miner process start -> first transaction)",
            f"{quantile(starts, 0.5):.2f} s",
            f"{quantile(starts, 0.95):.2f} s",
            "",
            "",
        )
    if failed:
        table.add_row("[red]not Healthy within the timeout[/]", str(failed), "", "0", "[red]no[/]")
    console.print(table)
    if args.json:
        print(json.dumps(figures, indent=2))
    return 0 if totals and failed == 0 and quantile(totals, 0.5) <= TARGET_P50_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
