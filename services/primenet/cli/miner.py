"""`primenet miner ...`: the GPU provider's node.

    check [--json]        the host's doctor (exit 0 ok, 1 failures, 2 could not run)
    run                   register on chain and in discovery (what is missing), then serve the API and heartbeat
    record [--json]       the node's record as discovery holds it (exit 1 when discovery has none)
    deregister [--json]   leave the pool, remove the node, reclaim the stake (each step skipped when done)
    balance [--json]      the provider's ETH, AI, stake, reclaimable and withdrawable amounts
    isolation [--apply|--remove]  the firewall of the `isolated` task network: print it, apply it (root), undo it

Settings come from `PRIMENET_*` variables (see `primenet.miner.settings.MinerSettings`; `check`'s options override
them); the provider and node keys from 0600 files (PRIMENET_PROVIDER_KEY_FILE / PRIMENET_NODE_KEY_FILE), else
PRIMENET_PROVIDER_KEY / PRIMENET_NODE_KEY, never from an argument. Exit codes: 0 done, 1 refused, 2 could not run.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import aiohttp
import httpx
import typer
from pydantic import ValidationError
from rich.table import Table

from primenet.chain.contracts import Network
from primenet.chain.deployment import Deployment, DeploymentError
from primenet.chain.errors import ChainError, ContractRevertError
from primenet.cli.options import load_settings, problems, tls_of
from primenet.cli.output import console, fail, progress
from primenet.core.app import serve
from primenet.core.challenge.wire import ChallengeError
from primenet.core.keys import PrivateKeyError
from primenet.core.logs import configure_logging
from primenet.miner import firewall
from primenet.miner.checks import CheckOptions, CheckReport, render_text, run_checks
from primenet.miner.hardware import VisibleDevicesError, detect_specs
from primenet.miner.onboarding import publisher_for, specs_source
from primenet.miner.publisher import PublishError
from primenet.miner.registration import Outcome, Registrar, RegistrationError, balances, tokens
from primenet.miner.settings import MinerKeys, MinerSettings, load_keys
from primenet.miner.solver import select_backend

T = TypeVar("T")
AsJson = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]

miner_app = typer.Typer(no_args_is_help=True)


@miner_app.callback()
def miner() -> None:
    """The GPU provider's node: host checks, registration, the API and heartbeats, deregistration."""


def _setting(name: str, help_text: str) -> Any:
    """An option that overrides the `MinerSettings` field `name` when given; its default is the settings' own."""
    default = MinerSettings.model_fields[name].default
    otherwise = "" if default is None else f", else {default}"
    return typer.Option(help=f"{help_text} Default: $PRIMENET_{name.upper()}{otherwise}.", show_default=False)


@miner_app.command()
def check(
    storage_path: Annotated[Path | None, _setting("storage_path", "Folder for task data (created 0700).")] = None,
    host: Annotated[str | None, _setting("host", "Address the miner's API binds.")] = None,
    port: Annotated[int | None, _setting("port", "Port of the miner's API.")] = None,
    rpc_url: Annotated[str | None, _setting("rpc_url", "JSON-RPC endpoint of the chain.")] = None,
    chain_id: Annotated[int | None, _setting("chain_id", "Chain id the RPC must answer.")] = None,
    discovery_url: Annotated[str | None, _setting("discovery_url", "Discovery service base URL.")] = None,
    visible_devices: Annotated[
        str | None, _setting("visible_devices", 'GPUs to offer: "0,2", UUIDs, "all" (unset), "none".')
    ] = None,
    require_gpu: Annotated[
        bool, typer.Option(envvar="PRIMENET_REQUIRE_GPU", help="A host without GPU fails instead of warning.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON report instead of lines.")] = False,
) -> None:
    """Check Docker, the NVIDIA runtime, GPUs, storage, the API port, the chain RPC and discovery."""
    given: dict[str, Any] = {
        "storage_path": storage_path,
        "host": host,
        "port": port,
        "rpc_url": rpc_url,
        "chain_id": chain_id,
        "discovery_url": discovery_url,
        "visible_devices": visible_devices,
    }
    try:
        settings = MinerSettings(**{name: value for name, value in given.items() if value is not None})
        options = CheckOptions(
            storage_path=settings.storage_path,
            api_host=settings.host,
            api_port=settings.port,
            rpc_url=settings.rpc_url,
            chain_id=settings.chain_id,
            discovery_url=settings.discovery_url,
            visible_devices=settings.visible_devices,
            require_gpu=require_gpu,
        )
        report = asyncio.run(run_checks(options))
    except ValidationError as exc:
        report = CheckReport.could_not_run(f"invalid options: {problems(exc)}")
    except Exception as exc:  # exit code 2 with the reason, never a traceback in place of the contract
        report = CheckReport.could_not_run(f"{type(exc).__name__}: {exc}")
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
    else:
        console.print(render_text(report), highlight=False, markup=False)
    raise typer.Exit(report.exit_code)


def _settings_and_keys() -> tuple[MinerSettings, MinerKeys]:
    """The settings, the keys and a readable deployment file, or exit 2 with one line: before any output or
    transaction."""
    settings = load_settings(MinerSettings, "miner")
    try:
        Deployment.load(settings.deployment_file)
        return settings, load_keys(settings)
    except (DeploymentError, PrivateKeyError) as exc:
        fail(str(exc), 2)


def _run(work: Coroutine[Any, Any, T]) -> T:
    """Run one async operation; refusals exit 1, an unusable environment exits 2, each with one clear line."""
    return _run_sync(lambda: asyncio.run(work))


def _run_sync(work: Callable[[], T]) -> T:
    """`_run` for a call that runs its own event loop (the API server and the upload it makes once serving)."""
    try:
        return work()
    except (RegistrationError, PublishError, ContractRevertError) as exc:
        fail(str(exc), 1)
    except (DeploymentError, FileNotFoundError, VisibleDevicesError) as exc:
        fail(str(exc), 2)
    except (ChainError, aiohttp.ClientError, httpx.HTTPError, OSError) as exc:
        fail(f"could not reach a service: {type(exc).__name__}: {exc}", 2)


@miner_app.command()
def run() -> None:
    """Register what is missing (provider stake, whitelist wait, node, discovery record), then serve the API
    (port 8091) while heartbeating to the pool's orchestrator once invited. Safe to restart at any point."""
    from primenet.miner.app import create_app
    from primenet.miner.onboarding import register, upload

    settings, keys = _settings_and_keys()
    tls = tls_of(settings)  # before onboarding sends any transaction
    configure_logging(settings.log_level)
    try:
        specs = detect_specs(settings.storage_path, settings.visible_devices)
        # A named backend that is not there (torch without a GPU) is found here, before any transaction.
        select_backend(settings.challenge_backend)
    except (VisibleDevicesError, ChallengeError) as exc:
        fail(str(exc), 2)
    progress(f"node {keys.node.address}, provider {keys.provider.address}, pool {settings.pool_id}")
    progress(f"{specs.gpu_count} GPU(s), {specs.cpu_cores} CPU cores, {specs.ram_mib} MiB RAM")
    outcome = _run(register(settings, keys, specs=specs, progress=progress))
    _print_outcome(outcome)
    try:
        app = create_app(settings, keys, specs)
    except (DeploymentError, FileNotFoundError) as exc:
        fail(str(exc), 2)
    miner = app.state.miner
    miner.listed = False

    async def announce() -> None:
        # Only now that the API listens: a validator or orchestrator that learns of the node can reach it at once.
        await upload(settings, keys, specs=specs, progress=progress)
        miner.listed = True

    progress(f"API on {settings.host}:{settings.port} (requests signed for audience {keys.node.address.lower()})")
    _run_sync(lambda: serve(app, host=settings.host, port=settings.port, tls=tls, when_serving=announce))


async def _own_record(settings: MinerSettings, keys: MinerKeys) -> dict[str, Any] | None:
    chain_id = Deployment.load(settings.deployment_file).chain_id
    return await publisher_for(settings, keys, chain_id, specs_source(settings)).own_record()


@miner_app.command()
def record(as_json: AsJson = False) -> None:
    """The node's record as discovery holds it, read with the node's key (exit 1 when discovery has none)."""
    settings, keys = _settings_and_keys()
    found = _run(_own_record(settings, keys))
    if found is None:
        fail(f"discovery ({settings.discovery_url}) has no record of node {keys.node.address}", 1)
    if as_json:
        typer.echo(json.dumps(found, indent=2))
        return
    table = Table(title=f"node {keys.node.address} in discovery")
    table.add_column("field")
    table.add_column("value")
    for key, value in found.items():
        table.add_row(key, value if isinstance(value, str) else json.dumps(value))
    console.print(table)


def _print_outcome(outcome: Outcome) -> None:
    for step, result in outcome.steps:
        progress(f"{step}: {result}")
    progress(f"{outcome.transactions} transaction(s) sent")


async def _registrar_do(settings: MinerSettings, keys: MinerKeys) -> tuple[Outcome, dict[str, int]]:
    async with Network.connect(settings.rpc_url, Deployment.load(settings.deployment_file)) as network:
        registrar = Registrar(
            network, provider=keys.provider, node=keys.node, pool_id=settings.pool_id, progress=progress
        )
        outcome = await registrar.deregister()
        return outcome, await balances(network, keys.provider.address)


@miner_app.command()
def deregister(as_json: AsJson = False) -> None:
    """Leave the pool (if in it), remove the node (if on chain) and reclaim the reclaimable stake (if any)."""
    settings, keys = _settings_and_keys()
    outcome, amounts = _run(_registrar_do(settings, keys))
    if as_json:
        body = {"steps": dict(outcome.steps), "transactions": outcome.transactions, "balances": amounts}
        typer.echo(json.dumps(body, indent=2))
        return
    _print_outcome(outcome)
    console.print(
        f"stake left {tokens(amounts['stake'])} AI; withdrawable now {tokens(amounts['withdrawable'])} AI "
        "(reclaimed stake becomes withdrawable after the unbonding period)",
        highlight=False,
    )


async def _balances(settings: MinerSettings, provider: str) -> dict[str, int]:
    async with Network.connect(settings.rpc_url, Deployment.load(settings.deployment_file)) as network:
        await network.check_chain()
        return await balances(network, provider)


@miner_app.command()
def balance(as_json: AsJson = False) -> None:
    """The provider's ETH and AI balances, stake, reclaimable stake and withdrawable amount."""
    settings, keys = _settings_and_keys()
    amounts = _run(_balances(settings, keys.provider.address))
    if as_json:
        body = {"provider": keys.provider.address, **{key: str(value) for key, value in amounts.items()}}
        typer.echo(json.dumps(body, indent=2))
        return
    table = Table(title=f"provider {keys.provider.address}")
    table.add_column("what")
    table.add_column("amount", justify="right")
    for key, value in amounts.items():
        table.add_row(key, f"{tokens(value)} {'ETH' if key == 'eth' else 'AI'}")
    console.print(table)


@miner_app.command()
def isolation(
    apply: Annotated[bool, typer.Option("--apply", help="Apply the rules (needs root).")] = False,
    remove: Annotated[bool, typer.Option("--remove", help="Take the rules out again (needs root).")] = False,
    chain: Annotated[
        str, typer.Option("--chain", help="Forward chain to hook: DOCKER-USER, FORWARD or auto (probe; needs root).")
    ] = "auto",
) -> None:
    """The iptables rules that keep tasks of the `isolated` network (PRIMENET_TASK_NETWORK_NAME) off the host's
    own addresses, link-local/metadata 169.254.0.0/16 and PRIMENET_TASK_BLOCKED_CIDRS. Without options: print them
    as a shell script. Exit 0 done, 2 could not run."""
    settings = load_settings(MinerSettings, "miner")
    if apply and remove:
        fail("--apply and --remove exclude each other", 2)
    if chain not in ("auto", "DOCKER-USER", "FORWARD"):
        fail(f"--chain {chain!r} is not DOCKER-USER, FORWARD or auto", 2)
    if settings.task_network != "isolated":
        progress(f"PRIMENET_TASK_NETWORK is {settings.task_network!r}: these rules matter only for 'isolated'")
    is_root = os.geteuid() == 0
    if (apply or remove) and not is_root:
        fail("applying or removing firewall rules needs root", 2)
    try:
        parent = chain if chain != "auto" else (firewall.forward_parent() if is_root else "DOCKER-USER")
        interface = settings.task_network_name
        if remove:
            firewall.remove(firewall.removal(interface, forward_parent=parent))
            progress(f"rules for {interface} removed")
            return
        steps = firewall.plan(interface, settings.task_blocked_cidrs, forward_parent=parent)
        if apply:
            firewall.apply(steps)
            progress(f"rules for {interface} applied ({parent})")
        else:
            typer.echo(firewall.script(steps), nl=False)
    except (firewall.FirewallError, OSError, subprocess.SubprocessError) as exc:
        fail(f"firewall: {exc}", 2)
