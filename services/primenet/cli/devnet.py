"""`primenet devnet up|down|status`: the local chain and Redis behind `make demo` and the tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from primenet.cli.output import console, fail
from primenet.devnet.local import Devnet, DevnetError, DevnetSettings, describe

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
    state = devnet.recorded()
    if state is None:
        if as_json:
            typer.echo(json.dumps({"running": False, "processes": {}}))
        else:
            console.print(f"No devnet is running (no state in {devnet.state_path}). Start one: primenet devnet up")
        return
    report = describe(state, devnet.running())
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    table = Table(title=f"devnet (chain id {state.chain_id}, state {devnet.state_path})")
    for column in ("service", "state", "pid", "url", "log"):
        table.add_column(column)
    for name, proc in report["processes"].items():  # type: ignore[attr-defined]
        table.add_row(
            name,
            "[green]running[/green]" if proc["running"] else "[red]stopped[/red]",
            str(proc["pid"]),
            proc["url"],
            proc["log"],
        )
    console.print(table)


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
        with console.status("Starting Anvil and Redis…", spinner="dots"):
            _, started = devnet.up()
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
    if alive and not all(alive.values()):
        raise typer.Exit(1)
