"""`primenet orchestrator`: run the orchestrator service with uvicorn, or ask it about its store.

    primenet orchestrator                     run the service (settings from PRIMENET_* variables or .env)
    primenet orchestrator store               the store-lost hold: is it on, since when, or the store's marker
    primenet orchestrator confirm-store       end the hold: the store is the pool's record from now on (asks first;
                                              --yes for scripts)

The two admin commands take the options of the pool commands (`--url`, `--token-file`, `--timeout`, `--json`;
`primenet.cli.pool`): the admin token comes from a 0600 file or PRIMENET_ADMIN_TOKEN, never from an argument.
"""

from __future__ import annotations

import datetime
from typing import Annotated

import typer

from primenet.chain.deployment import DeploymentError
from primenet.cli.options import load_settings, tls_of
from primenet.cli.output import console, fail
from primenet.cli.pool import Pool, pool_command
from primenet.core.app import serve
from primenet.core.keys import PrivateKeyError
from primenet.core.logs import configure_logging
from primenet.orchestrator.models import StoreState

orchestrator_app = typer.Typer(
    help="Run the orchestrator (no command), or ask it about its store (store, confirm-store).",
    invoke_without_command=True,
)


@orchestrator_app.callback()
def main(ctx: typer.Context) -> None:
    """Run the orchestrator (settings from PRIMENET_* variables or .env; the manager key from the 0600 file
    PRIMENET_MANAGER_KEY_FILE, else PRIMENET_MANAGER_KEY); or run one of the commands below."""
    if ctx.invoked_subcommand is None:
        orchestrator()


def orchestrator() -> None:
    """Run the orchestrator service until it is stopped."""
    from primenet.orchestrator.app import create_app
    from primenet.orchestrator.settings import OrchestratorSettings, load_manager_account

    settings = load_settings(OrchestratorSettings, "orchestrator")
    tls = tls_of(settings)
    try:
        manager = load_manager_account(settings)
        app = create_app(settings, manager)
    except (PrivateKeyError, DeploymentError, FileNotFoundError) as exc:
        fail(str(exc), 2)
    configure_logging(settings.log_level)
    serve(app, host=settings.host, port=settings.port, tls=tls)


def _when(at: float | None) -> str:
    return "?" if at is None else datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _describe(state: StoreState) -> str:
    if not state.hold:
        marker = state.marker
        return "store: ok" + (f" (pool {marker.pool_id}, {marker.how} {_when(marker.created_at)})" if marker else "")
    nodes = "?" if state.pool_nodes_on_chain is None else str(state.pool_nodes_on_chain)
    return (
        f"store: HOLD since {_when(state.hold_since)}; the pool has {nodes} node(s) on chain. No assignment is "
        "withdrawn until you run `primenet orchestrator confirm-store`."
    )


@orchestrator_app.command("store")
@pool_command
def store(pool: Pool) -> None:
    """Show whether the store-lost hold is on (the store was found empty while the pool had nodes on chain)."""
    with pool.session() as client:
        state = client.store()
    if pool.as_json:
        pool.show(state)
    else:
        console.print(_describe(state), highlight=False, markup=False)


@orchestrator_app.command("confirm-store")
@pool_command
def confirm_store(
    pool: Pool,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask; for scripts.")] = False,
) -> None:
    """End the store-lost hold: the store is the pool's record from now on, so every node without an assignment in
    it stops its task at its next heartbeat (tasks created during the hold are placed)."""
    if not yes and not typer.confirm(
        "Nodes without an assignment in the orchestrator's store will stop their tasks. Confirm the store?"
    ):
        fail("not confirmed; the hold goes on", 1)
    with pool.session() as client:
        confirmed = client.confirm_store()
    if pool.as_json:
        pool.show(confirmed)
    else:
        what = "hold ended" if confirmed.ended else "the store was not held"
        console.print(f"{what}; {_describe(confirmed.store)}", highlight=False, markup=False)
