"""The FastAPI base every service starts from: one error shape, a body size limit, Prometheus metrics."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import aiohttp
import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import make_asgi_app
from web3.exceptions import BadResponseFormat, Web3RPCError

from primenet import __version__
from primenet.core.errors import ApiError, UpstreamUnavailableError, error_response, install_error_handlers
from primenet.core.limits import BodySizeLimit
from primenet.core.metrics import AdminOnlyMetrics, MetricsExposure, metrics_listener
from primenet.core.tls import TlsFiles

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]
STARTUP_FAILURE = 3  # what `uvicorn.run` exits with when the server could not start (a port in use)
GRACEFUL_STOP_S = 10  # a stop waits this long for requests in flight (long-polls included), then closes them
# How long an idle keep-alive connection stays open. It must outlast our clients' pools (httpx reuses an idle
# connection for up to 5 s, `httpx.Limits().keepalive_expiry`): at uvicorn's default, also 5 s, a client could send
# on a connection in the instant the server closed it, and its request failed with a ReadError (seen under load
# in bench/discovery.py at N = 10,000). Short enough that idle connections do not pile up.
KEEP_ALIVE_S = 15


def service_app(
    *, title: str, max_body_bytes: int, lifespan: Lifespan | None = None, metrics: MetricsExposure | None = None
) -> FastAPI:
    """`metrics` (the settings' `metrics_exposure()`; default: public on this listener) says where `/metrics` is."""
    exposure = metrics or MetricsExposure()
    if exposure.port is not None:
        lifespan = _with_metrics_listener(lifespan, exposure.host, exposure.port)
    app = FastAPI(title=title, version=__version__, lifespan=lifespan)
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes)
    if exposure.port is None:
        app.mount("/metrics", AdminOnlyMetrics(app, make_asgi_app()) if exposure.require_admin else make_asgi_app())
    return app


def _with_metrics_listener(inner: Lifespan | None, host: str, port: int) -> Lifespan:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with metrics_listener(host, port):
            if inner is None:
                yield
            else:
                async with inner(app):
                    yield

    return lifespan


def from_state(field: str) -> Callable[[Request], Awaitable[Any]]:
    """A route dependency: what create_app put on `app.state.<field>` (the `Annotated` alias names its type).

    Async on purpose: FastAPI runs a plain `def` dependency in its thread pool, one hop per request.
    """

    async def read(request: Request) -> Any:
        return getattr(request.app.state, field)

    return read


# What a web3/JSON-RPC call raises when the chain's node cannot be reached, does not answer in time, answers with a
# JSON-RPC error object (its backend is down) or with something that is not a JSON-RPC reply. A revert is none of
# these (`ContractLogicError`): it is the contract's answer, and the routes map it to their own 4xx.
CHAIN_DOWN_ERRORS: tuple[type[Exception], ...] = (
    aiohttp.ClientError,
    httpx.HTTPError,
    asyncio.TimeoutError,
    Web3RPCError,
    BadResponseFormat,
    UpstreamUnavailableError,
)


def answer_chain_down(app: FastAPI, *more: type[Exception]) -> None:
    """Answer 503 `chain_unavailable` (retry) when a route's chain call fails with `CHAIN_DOWN_ERRORS` or `more`."""

    async def on_chain_down(_: Request, exc: Exception) -> JSONResponse:
        message = f"the chain RPC is unreachable ({type(exc).__name__}); retry shortly"
        return error_response(ApiError(503, "chain_unavailable", message, headers={"Retry-After": "5"}))

    for error in (*CHAIN_DOWN_ERRORS, *more):
        app.add_exception_handler(error, on_chain_down)


@asynccontextmanager
async def background(**loops: Coroutine[Any, Any, None]) -> AsyncIterator[dict[str, asyncio.Task[None]]]:
    """Run a service's loops (name=coroutine) for the life of the block; cancel and await them on the way out."""
    tasks = {name: asyncio.create_task(loop, name=name) for name, loop in loops.items()}
    try:
        yield tasks
    finally:
        for task in tasks.values():
            task.cancel()
        for task in tasks.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task


class _Server(uvicorn.Server):
    """uvicorn's server, running `when_serving` once its sockets listen; should that raise, the server stops and
    the error is kept in `failure`."""

    def __init__(self, config: uvicorn.Config, when_serving: Callable[[], Awaitable[object]] | None) -> None:
        super().__init__(config)
        self.when_serving = when_serving
        self.failure: BaseException | None = None
        self._hook: asyncio.Task[None] | None = None

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        if self.started and self.when_serving is not None:
            self._hook = asyncio.create_task(self._run_hook(self.when_serving))

    async def _run_hook(self, hook: Callable[[], Awaitable[object]]) -> None:
        try:
            await hook()
        except Exception as exc:
            self.failure = exc
            self.should_exit = True

    async def shutdown(self, sockets: Any = None) -> None:
        if self._hook is not None and not self._hook.done():
            self._hook.cancel()
        await super().shutdown(sockets)


def serve(
    app: FastAPI,
    *,
    host: str,
    port: int,
    tls: TlsFiles | None = None,
    when_serving: Callable[[], Awaitable[object]] | None = None,
) -> None:
    """Run a service until SIGINT or SIGTERM, over HTTPS when `tls` is given (checked by `core.tls.tls_files`);
    logging is already configured (structlog), so uvicorn's is off. An idle connection stays open
    `KEEP_ALIVE_S`, longer than our clients keep one for reuse.

    `when_serving` runs once the socket listens (after the lifespan started): the miner announces itself to
    discovery only then, so that whoever learns of it can reach it. If it raises, the server stops and its error
    is raised here."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_STOP_S,
        timeout_keep_alive=KEEP_ALIVE_S,
        ssl_certfile=str(tls.cert_file) if tls is not None else None,
        ssl_keyfile=str(tls.key_file) if tls is not None else None,
    )
    server = _Server(config, when_serving)
    server.run()
    if server.failure is not None:
        raise server.failure
    if not server.started:  # e.g. the port is taken: uvicorn logged why; exit as `uvicorn.run` does
        sys.exit(STARTUP_FAILURE)
