"""Run an ASGI app on a real uvicorn server in a background thread (tests and the local launcher)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.types import ASGIApp

from primenet.core.tls import TlsFiles


@contextmanager
def serve_in_thread(
    app: ASGIApp, *, port: int, host: str = "127.0.0.1", timeout_s: float = 10.0, tls: TlsFiles | None = None
) -> Iterator[str]:
    """Serve `app` until the block ends (over HTTPS with `tls`); yields its base URL once it accepts connections."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        ssl_certfile=str(tls.cert_file) if tls is not None else None,
        ssl_keyfile=str(tls.key_file) if tls is not None else None,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"uvicorn did not start on {host}:{port}")
        time.sleep(0.01)
    try:
        yield f"{'https' if tls is not None else 'http'}://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout_s)
