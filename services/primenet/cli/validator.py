"""`primenet validator run` (the loop and its API) and `primenet validator challenge NODE` (one challenge by hand).

Settings come from `PRIMENET_*` variables or `.env` (see `primenet.validator.settings`); the key from
the 0600 file `PRIMENET_VALIDATOR_KEY_FILE`, else `PRIMENET_VALIDATOR_KEY`, never from an argument.
`challenge` exits 0 when the node passed, 1 when it was rejected, 2 when the challenge could not run.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer
from eth_account.signers.local import LocalAccount
from rich.table import Table

from primenet.chain.deployment import Deployment, DeploymentError
from primenet.cli.options import http_url, load_settings, tls_of
from primenet.cli.output import console, fail, progress
from primenet.core.app import serve
from primenet.core.challenge.wire import MatrixDtype
from primenet.core.discovery_client import DiscoveryError, DiscoveryReader
from primenet.core.keys import PrivateKeyError
from primenet.core.logs import configure_logging
from primenet.validator.challenger import CPU_MODEL, ChallengeClient, ChallengeResult, Outcome, Target
from primenet.validator.settings import ValidatorSettings, load_validator_account

validator_app = typer.Typer(no_args_is_help=True)


@validator_app.callback()
def validator() -> None:
    """The validator: challenges new nodes' compute and validates them on chain."""


def _settings(**overrides: Any) -> ValidatorSettings:
    return load_settings(ValidatorSettings, "validator", **overrides)


def _account(settings: ValidatorSettings) -> LocalAccount:
    try:
        return load_validator_account(settings)
    except PrivateKeyError as exc:
        fail(str(exc), 2)


@validator_app.command()
def run() -> None:
    """Run the validator loop with its HTTP API (/health, /metrics, /rejections)."""
    from primenet.validator.app import create_app

    settings = _settings()
    tls = tls_of(settings)
    account = _account(settings)
    try:
        app = create_app(settings, account)
    except (DeploymentError, FileNotFoundError, ValueError) as exc:
        fail(str(exc), 2)
    configure_logging(settings.log_level)
    serve(app, host=settings.host, port=settings.port, tls=tls)


@validator_app.command()
def challenge(
    node: Annotated[str, typer.Argument(metavar="NODE", help="The node's address.")],
    url: Annotated[
        str | None, typer.Option(help="The miner's base URL (http://ip:port); default: its discovery record's.")
    ] = None,
    gpu: Annotated[
        str | None,
        typer.Option(help=f'Claimed GPU model; default: the record\'s first GPU, "{CPU_MODEL}" with --url.'),
    ] = None,
    n: Annotated[
        int | None,
        typer.Option("-n", help="Matrix size (default PRIMENET_CHALLENGE_N, PRIMENET_GPU_CHALLENGE_N for a GPU)."),
    ] = None,
    dtype: Annotated[MatrixDtype | None, typer.Option(help="Matrix dtype (default PRIMENET_CHALLENGE_DTYPE).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Challenge one node now and print the verdict with its figures."""
    if not node.startswith("0x") or len(node) != 42:
        fail(f"{node!r} is not a node address", 2)
    if url is not None:
        url = http_url(url)
    settings = _settings(challenge_n=n, gpu_challenge_n=n, challenge_dtype=dtype)
    account = _account(settings)
    try:
        result = asyncio.run(_challenge_one(settings, account, node.lower(), url, gpu))
    except (DiscoveryError, DeploymentError, FileNotFoundError, ValueError) as exc:
        fail(str(exc), 2)
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
    else:
        console.print(render(result))
    raise typer.Exit(result.exit_code)


async def _challenge_one(
    settings: ValidatorSettings, account: LocalAccount, node: str, url: str | None, gpu: str | None
) -> ChallengeResult:
    chain_id = _chain_id(settings)
    if url is None:
        progress(f"reading {node}'s record from {settings.discovery_url}")
        async with DiscoveryReader(
            settings.discovery_url, account, chain_id=chain_id, audience=settings.discovery_audience
        ) as discovery:
            listed = await discovery.node(node)
        if listed is None:
            raise DiscoveryError(f"discovery has no record of {node}")
        target = Target.of(listed.record, settings.node_addresses(), settings.node_scheme)
    else:
        target = Target(node=node, url=url, claimed_gpu=CPU_MODEL)
    if gpu is not None:
        target = Target(node=target.node, url=target.url, claimed_gpu=gpu)
    client = ChallengeClient.from_settings(account, settings, chain_id=chain_id)
    size = client.size_for(target.claimed_gpu)
    progress(f"challenging {target.url} (n = {size}, {settings.challenge_dtype}, {target.claimed_gpu})")
    return await client.run(target)


def _chain_id(settings: ValidatorSettings) -> int:
    """The deployment's chain id when its file is there (as `run` uses), else PRIMENET_CHAIN_ID."""
    path = Path(settings.deployment_file)
    return Deployment.load(path).chain_id if path.exists() else settings.chain_id


def render(result: ChallengeResult) -> Table:
    colour = {Outcome.ACCEPTED: "green", Outcome.REJECTED: "red", Outcome.FAILED: "yellow"}[result.outcome]
    table = Table(title=f"challenge of {result.node}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    table.add_row("outcome", f"[{colour}]{result.outcome.value}[/{colour}]")
    table.add_row("reason", result.reason)
    table.add_row("detail", result.detail)
    table.add_row("miner", result.url)
    table.add_row("claimed GPU", result.claimed_gpu)
    table.add_row("backend", result.backend or "-")
    for key, value in sorted(result.figures.items()):
        table.add_row(key, f"{value:.6g}")
    return table
