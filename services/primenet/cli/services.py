"""`primenet discovery` and `primenet orchestrator`: run one service with uvicorn."""

from __future__ import annotations

import typer

from primenet.chain.deployment import DeploymentError
from primenet.cli.options import load_settings, tls_of
from primenet.cli.orchestrator import orchestrator_app
from primenet.cli.output import fail
from primenet.core.app import serve
from primenet.core.logs import configure_logging


def discovery() -> None:
    """Run the discovery service (settings from PRIMENET_* variables or .env; see docs/discovery.md)."""
    from primenet.discovery.app import create_app
    from primenet.discovery.settings import DiscoverySettings

    settings = load_settings(DiscoverySettings, "discovery")
    tls = tls_of(settings)
    try:
        app = create_app(settings)
    except (DeploymentError, FileNotFoundError) as exc:
        fail(str(exc), 2)
    configure_logging(settings.log_level)
    serve(app, host=settings.host, port=settings.port, tls=tls)


def register(app: typer.Typer) -> None:
    app.command("discovery")(discovery)
    app.add_typer(orchestrator_app, name="orchestrator")
