"""`primenet devnet up|down|status`: the local chain and Redis behind `make demo` and the tests."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from primenet.cli.output import console, fail, progress
from primenet.devnet.local import Devnet, DevnetError, DevnetSettings, report

devnet_app = typer.Typer(
    help="Run a local devnet: a real Anvil chain and a real Redis on loopback ports.", no_args_is_help=True
)

StateDir = Annotated[
    Path | None,
    typer.Option(
        help="Folder for the state file, logs and Redis data (env PRIMENET_DEVNET_STATE_DIR, default .devnet)"
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of a table.")]


def _devnet(state_dir: Path | None, **overrides: Any) -> Devnet:
    values = {key: value for key, value in overrides.items() if value is not None}
    if state_dir is not None:
        values["state_dir"] = state_dir
    return Devnet(DevnetSettings(**values))


def _show(devnet: Devnet, as_json: bool) -> None:
    status = report(devnet)
    if as_json:
        typer.echo(status.model_dump_json(indent=2))
        return
    if status.chain_id is None:
        console.print(f"No devnet is running (no state in {devnet.state_path}). Start one: primenet devnet up")
        return
    processes = Table(title=f"devnet: chain id {status.chain_id}, state in {devnet.state_dir}")
    for column in ("service", "state", "pid", "url", "log"):
        processes.add_column(column)
    for proc in status.processes.values():
        state = "[green]running[/green]" if proc.running else "[red]stopped[/red]"
        processes.add_row(proc.name, state, str(proc.pid), proc.url, proc.log)
    console.print(processes)
    if status.contracts:
        contracts = Table(title=f"contracts ({status.deployment_file})")
        contracts.add_column("contract")
        contracts.add_column("address")
        for name, address in status.contracts.items():
            contracts.add_row(name, address)
        console.print(contracts)
    roles = Table(title="roles (Anvil dev accounts: public keys, for this devnet only)")
    for column in ("role", "address", "dev account"):
        roles.add_column(column)
    for role in status.roles:
        roles.add_row(role.role, role.address, f"#{role.dev_account}")
    console.print(roles)


@devnet_app.command()
def up(
    state_dir: StateDir = None,
    anvil_port: Annotated[
        int | None, typer.Option(help="Anvil's port (env PRIMENET_DEVNET_ANVIL_PORT, default 8545)")
    ] = None,
    redis_port: Annotated[
        int | None, typer.Option(help="Redis's port (env PRIMENET_DEVNET_REDIS_PORT, default 6379)")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Start Anvil and Redis in the background and wait until both answer; a no-op when already up."""
    devnet = _devnet(state_dir, anvil_port=anvil_port, redis_port=redis_port)
    try:
        _, started = devnet.up(progress=progress)
    except DevnetError as exc:
        fail(f"devnet up failed: {exc}")
    if not as_json:
        if started:
            console.print("[green]Devnet is up.[/green] Stop it with: primenet devnet down")
        else:
            console.print("The devnet is already running; nothing was started. (primenet devnet down stops it.)")
    _show(devnet, as_json)


@devnet_app.command()
def down(state_dir: StateDir = None) -> None:
    """Stop exactly the processes that `up` started, and forget them."""
    devnet = _devnet(state_dir)
    try:
        stopped = devnet.down()
    except DevnetError as exc:
        fail(f"devnet down failed: {exc}")
    console.print(f"Stopped: {', '.join(stopped)}." if stopped else "Nothing was running.")


@devnet_app.command()
def status(state_dir: StateDir = None, as_json: AsJson = False) -> None:
    """Show what runs where (exit status 1 when a recorded process has stopped)."""
    devnet = _devnet(state_dir)
    try:
        _show(devnet, as_json)
        alive = devnet.running()
    except DevnetError as exc:
        fail(str(exc))
    if not all(alive.values()):
        raise typer.Exit(1)
