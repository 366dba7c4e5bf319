"""Where a service's Prometheus metrics are served: on the main listener (public, or behind the admin token), or on
a separate, internal listener of their own.

`MetricsExposure` is what the settings say (`metrics_host`, `metrics_port`, `metrics_require_admin`);
`core.app.service_app` applies it. With a port set, the main listener has no `/metrics` at all and the metrics
listener (started and stopped with the app's lifespan) serves them at `/metrics` on `metrics_host:metrics_port`;
bind it to an address only the scraper reaches. The devnet keeps the default: public `/metrics` on the main port.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI
from prometheus_client import make_asgi_app
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from primenet.core.admin import bearer, require_admin
from primenet.core.errors import ApiError, error_response

START_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class MetricsExposure:
    host: str = "127.0.0.1"
    port: int | None = None  # None: served on the main listener
    require_admin: bool = False  # on the main listener: only with `Authorization: Bearer <admin token>`


class AdminOnlyMetrics:
    """The metrics app behind the owning app's admin token (`app.state.admin_token`): 401 JSON without it."""

    def __init__(self, owner: FastAPI, inner: ASGIApp) -> None:
        self.owner = owner
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            try:
                require_admin(bearer(Request(scope)), getattr(self.owner.state, "admin_token", None))
            except ApiError as exc:
                await error_response(exc)(scope, receive, send)
                return
        await self.inner(scope, receive, send)


class _NestedServer(uvicorn.Server):
    """A uvicorn server run inside another service's event loop: the outer server owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def metrics_listener(host: str, port: int) -> AsyncIterator[None]:
    """Serve the process's metrics at `/metrics` on host:port for the life of the block."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.mount("/metrics", make_asgi_app())
    config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False, lifespan="off")
    server = _NestedServer(config)
    # Bound here, so a taken port is an OSError for the caller, not uvicorn's sys.exit inside a task.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    task = asyncio.create_task(server.serve(sockets=[sock]), name=f"metrics-{host}:{port}")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT_S
    while not server.started:
        if task.done() or loop.time() > deadline:  # e.g. the port is taken: the service must not start blind
            server.should_exit = True
            await asyncio.gather(task, return_exceptions=True)
            raise RuntimeError(f"the metrics listener could not start on {host}:{port}")
        await asyncio.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        await task
        sock.close()
