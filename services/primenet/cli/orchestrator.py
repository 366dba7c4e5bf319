"""`primenet orchestrator`: run the orchestrator service with uvicorn."""

from __future__ import annotations

from primenet.chain.deployment import DeploymentError
from primenet.cli.options import load_settings, tls_of
from primenet.cli.output import fail
from primenet.core.app import serve
from primenet.core.keys import PrivateKeyError
from primenet.core.logs import configure_logging


def orchestrator() -> None:
    """Run the orchestrator (settings from PRIMENET_* variables or .env; the manager key from the 0600 file
    PRIMENET_MANAGER_KEY_FILE, else PRIMENET_MANAGER_KEY)."""
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
