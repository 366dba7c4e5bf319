"""The FastAPI base every service starts from: one error shape, a body size limit, Prometheus metrics."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from fastapi import FastAPI
from prometheus_client import make_asgi_app

from primenet import __version__
from primenet.core.errors import install_error_handlers
from primenet.core.limits import BodySizeLimit

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def service_app(*, title: str, max_body_bytes: int, lifespan: Lifespan | None = None) -> FastAPI:
    app = FastAPI(title=title, version=__version__, lifespan=lifespan)
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes)
    app.mount("/metrics", make_asgi_app())
    return app
