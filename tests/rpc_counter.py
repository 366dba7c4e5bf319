"""A loopback JSON-RPC proxy that forwards to a real chain node and records each call that passes through it.

Point a service's `rpc_url` at it to see how many chain calls a stream of requests made it pay: `calls("0x91d14854")`
counts the `eth_call`s to the function with that 4-byte selector (batched requests are counted one by one).
"""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx
from starlette.types import Receive, Scope, Send


class CountingRpcProxy:
    """An ASGI app (serve it with `serve_in_thread`) that relays every POST body to `upstream` unchanged."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self._lock = threading.Lock()
        self._seen: list[tuple[str, str]] = []  # (JSON-RPC method, 4-byte selector of an eth_call or "")

    def calls(self, selector: str, method: str = "eth_call") -> int:
        with self._lock:
            return sum(1 for seen_method, seen in self._seen if seen_method == method and seen == selector.lower())

    def _record(self, payload: Any) -> None:
        for item in payload if isinstance(payload, list) else [payload]:
            method = str(item.get("method", ""))
            selector = ""
            if method == "eth_call":
                call = item["params"][0]
                selector = str(call.get("data") or call.get("input") or "")[:10].lower()
            with self._lock:
                self._seen.append((method, selector))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self._record(json.loads(body))
        async with httpx.AsyncClient(timeout=30) as upstream:
            answer = await upstream.post(self.upstream, content=body, headers={"content-type": "application/json"})
        await send(
            {
                "type": "http.response.start",
                "status": answer.status_code,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(answer.content)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer.content})
