"""A loopback JSON-RPC proxy that forwards to a real chain node and records each call that passes through it.

Point a service's `rpc_url` at it to see how many chain calls a stream of requests made it pay: `calls("0x91d14854")`
counts the `eth_call`s to the function with that 4-byte selector (batched requests are counted one by one).
Set `fault` to make it answer as a failing node or gateway does instead of forwarding (see `FAULTS`).
"""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx
from starlette.types import Receive, Scope, Send

FAULTS = {
    "rpc_error": "a JSON-RPC error object for every request (the node's backend is down)",
    "html": "200 with an HTML page (a captive portal or a misrouted gateway)",
    "bad_gateway": "502 with an HTML page (the load balancer in front of the node)",
}


class CountingRpcProxy:
    """An ASGI app (serve it with `serve_in_thread`) that relays every POST body to `upstream` unchanged."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.fault: str | None = None  # one of FAULTS; None forwards
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
        payload = json.loads(body)
        self._record(payload)
        status, content_type, content = await self._answer(payload, body)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", content_type), (b"content-length", str(len(content)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": content})

    async def _answer(self, payload: Any, body: bytes) -> tuple[int, bytes, bytes]:
        if self.fault == "rpc_error":
            items = payload if isinstance(payload, list) else [payload]
            errors = [
                {"jsonrpc": "2.0", "id": item.get("id"), "error": {"code": -32603, "message": "backend unavailable"}}
                for item in items
            ]
            return 200, b"application/json", json.dumps(errors if isinstance(payload, list) else errors[0]).encode()
        if self.fault in ("html", "bad_gateway"):
            return (200 if self.fault == "html" else 502), b"text/html", b"<html><body>Bad gateway</body></html>"
        async with httpx.AsyncClient(timeout=30) as upstream:
            answer = await upstream.post(self.upstream, content=body, headers={"content-type": "application/json"})
        return answer.status_code, b"application/json", answer.content
