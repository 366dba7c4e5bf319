"""Calls to peers we do not trust to answer politely: one deadline for the whole call, and a cap on the reply.

httpx's timeouts bound each network operation, not the call: a peer that sends one byte every 29 s keeps a request
with a 30 s read timeout alive for ever, and a peer may send a body of any size, which `response.content` would
hold in memory. `bounded_call` closes both:

- the whole call (connect, send, status, headers, every byte of the body) runs under one `asyncio.timeout`; past
  it the connection is dropped and `DeadlineExceededError` raised;
- the body is streamed: a declared `Content-Length` over `max_bytes` is refused before one byte of the body is
  read, and an undeclared or lying one is cut off at the first chunk past `max_bytes` (`ReplyTooLargeError`), so
  at most `max_bytes` plus one network chunk is ever held;
- compressed replies are refused (`ReplyEncodingError`): we ask for `identity`, and a gzip body could expand a
  thousandfold between our counter and our memory;
- redirects are never followed: a peer cannot send us on to an address we did not check.

Transport failures stay `httpx.HTTPError` (the caller knows what "unreachable" means to it).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import httpx

from primenet.core.errors import PrimenetError


class PeerCallError(PrimenetError):
    """The root of what `bounded_call` raises on purpose."""


class DeadlineExceededError(PeerCallError, TimeoutError):
    """The peer did not finish its reply (all of it) within the call's deadline."""


class ReplyTooLargeError(PeerCallError):
    """The peer's reply body is (or declares to be) larger than the cap."""


class ReplyEncodingError(PeerCallError):
    """The peer sent a compressed (Content-Encoding other than identity) reply."""


@dataclass(frozen=True)
class PeerReply:
    """A complete reply, read within its deadline and size cap."""

    status_code: int
    headers: httpx.Headers
    content: bytes

    def json(self) -> Any:
        """The body as JSON; ValueError when it is not."""
        return json.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode(errors="replace")


async def bounded_call(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    deadline_s: float,
    max_bytes: int,
    auth: httpx.Auth | None = None,
    **request: Any,
) -> PeerReply:
    """Send one request with `http` and read its whole reply within `deadline_s` and `max_bytes`.

    `request` holds `http.build_request`'s keywords (content, json, params, headers, timeout); `auth` overrides the
    client's. The client's own per-operation timeouts still apply inside the deadline (a quicker connect timeout
    still tells "unreachable" apart from "slow").
    """
    built = http.build_request(method, url, **request)
    built.headers["accept-encoding"] = "identity"
    try:
        async with asyncio.timeout(deadline_s):
            if auth is None:
                response = await http.send(built, stream=True, follow_redirects=False)
            else:
                response = await http.send(built, auth=auth, stream=True, follow_redirects=False)
            try:
                return PeerReply(response.status_code, response.headers, await _read_capped(response, max_bytes))
            finally:
                await response.aclose()
    except TimeoutError:
        raise DeadlineExceededError(f"{method} {url}: no complete reply within {deadline_s:g} s") from None


async def _read_capped(response: httpx.Response, max_bytes: int) -> bytes:
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise ReplyEncodingError(f"the reply is {encoding}-encoded; only identity is accepted")
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise ReplyTooLargeError(f"the reply declares {declared} bytes, more than the {max_bytes} bytes accepted")
    chunks: list[bytes] = []
    seen = 0
    async for chunk in response.aiter_raw():
        seen += len(chunk)
        if seen > max_bytes:
            raise ReplyTooLargeError(f"the reply is larger than the {max_bytes} bytes accepted")
        chunks.append(chunk)
    return b"".join(chunks)
