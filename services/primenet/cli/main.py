"""The `primenet` command: one Typer app, a sub-command group per area."""

from __future__ import annotations

from typing import Annotated

import typer

from primenet import __version__
from primenet.cli.chain import chain_app
from primenet.cli.devnet import devnet_app
from primenet.cli.miner import miner_app
from primenet.cli.pool import register as register_pool
from primenet.cli.services import register as register_services
from primenet.cli.validator import validator_app

app = typer.Typer(
    name="primenet",
    help="primenet: a peer-to-peer GPU compute network (contracts, services, local devnet).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(devnet_app, name="devnet")
app.add_typer(chain_app, name="chain")
app.add_typer(miner_app, name="miner")
app.add_typer(validator_app, name="validator")
register_services(app)
register_pool(app)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"primenet {__version__}")
        raise typer.Exit


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """primenet: a peer-to-peer GPU compute network (contracts, services, local devnet)."""
