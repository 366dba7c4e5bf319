"""`primenet miner check [--json]`: the miner host's doctor (exit 0 ok, 1 failures, 2 could not run)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from primenet.cli.output import console
from primenet.miner.checks import CheckOptions, CheckReport, render_text, run_checks

miner_app = typer.Typer(no_args_is_help=True)


@miner_app.callback()
def miner() -> None:
    """The GPU provider's node: host checks (more commands as they land)."""


@miner_app.command()
def check(
    storage_path: Annotated[
        Path, typer.Option(envvar="PRIMENET_STORAGE_PATH", help="Folder for task data (created 0700 if missing).")
    ] = Path("/var/lib/primenet"),
    host: Annotated[str, typer.Option(envvar="PRIMENET_HOST", help="Address the miner's API binds.")] = "0.0.0.0",
    port: Annotated[int, typer.Option(envvar="PRIMENET_PORT", help="Port of the miner's API.")] = 8091,
    rpc_url: Annotated[str, typer.Option(envvar="PRIMENET_RPC_URL", help="JSON-RPC endpoint of the chain.")] = (
        "http://127.0.0.1:8545"
    ),
    chain_id: Annotated[int, typer.Option(envvar="PRIMENET_CHAIN_ID", help="Chain id the RPC must answer.")] = 31337,
    discovery_url: Annotated[
        str, typer.Option(envvar="PRIMENET_DISCOVERY_URL", help="Discovery service base URL.")
    ] = "http://127.0.0.1:8089",
    visible_devices: Annotated[
        str | None,
        typer.Option(envvar="PRIMENET_VISIBLE_DEVICES", help='GPUs to offer: "0,2", UUIDs, "all" (default), "none".'),
    ] = None,
    require_gpu: Annotated[
        bool, typer.Option(envvar="PRIMENET_REQUIRE_GPU", help="A host without GPU fails instead of warning.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON report instead of lines.")] = False,
) -> None:
    """Check Docker, the NVIDIA runtime, GPUs, storage, the API port, the chain RPC and discovery."""
    try:
        options = CheckOptions(
            storage_path=storage_path,
            api_host=host,
            api_port=port,
            rpc_url=rpc_url,
            chain_id=chain_id,
            discovery_url=discovery_url,
            visible_devices=visible_devices,
            require_gpu=require_gpu,
        )
        report = asyncio.run(run_checks(options))
    except ValidationError as exc:
        report = CheckReport.could_not_run(f"invalid options: {exc}")
    except Exception as exc:  # exit code 2 with the reason, never a traceback in place of the contract
        report = CheckReport.could_not_run(f"{type(exc).__name__}: {exc}")
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
    else:
        console.print(render_text(report), highlight=False, markup=False)
    raise typer.Exit(report.exit_code)
