"""The orchestrator's calls to miners (invite, task logs, task restart, nudge), signed by the compute manager key.

A miner is whoever holds a node key, so every call is bounded (`primenet.core.peerhttp.bounded_call`): its
address must pass the address policy before anything is sent (`address_refused`), the whole call has one deadline
(`timeout_s`, or the nudge's own), and the reply is read up to `max_reply_bytes`. Each failure is a `PeerError`.

Discovery, its other peer, is read through `primenet.core.discovery_client`.
"""

from __future__ import annotations

from typing import Any

import httpx
from eth_account.signers.local import LocalAccount

from primenet.core.auth import RequestSigner
from primenet.core.errors import PrimenetError
from primenet.core.models import InviteRequest
from primenet.core.nodeaddr import AddressPolicy, AddressRefusedError, node_url
from primenet.core.peerhttp import PeerCallError, PeerReply, bounded_call

DEFAULT_MAX_REPLY_BYTES = 8 << 20  # a log tail of MAX_LOG_LINES long lines fits; nothing else comes close


class PeerError(PrimenetError, RuntimeError):
    """A peer could not be reached, or answered with an error or a reply of the wrong shape."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def _error_of(response: PeerReply) -> tuple[str, str]:
    try:
        error = response.json()["error"]
        return str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        return "http_error", response.text[:300]


class MinerClient:
    """Requests to miners' APIs; the audience is the node's own address, as the miner requires.

    `timeout_s` bounds each whole call; `addresses` says which node IPs may be called at all (strict by default:
    global addresses only); `max_reply_bytes` caps what is read of a reply; `scheme` is http or https.
    """

    def __init__(
        self,
        account: LocalAccount,
        *,
        chain_id: int,
        timeout_s: float,
        addresses: AddressPolicy | None = None,
        max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
        scheme: str = "http",
    ) -> None:
        self.account = account
        self.scheme = scheme  # https when the miners serve TLS (`node_scheme`)
        self.chain_id = chain_id
        self.timeout_s = timeout_s
        self.addresses = addresses or AddressPolicy()
        self.max_reply_bytes = max_reply_bytes
        self.http = httpx.AsyncClient(timeout=timeout_s, follow_redirects=False)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def invite(self, ip: str, port: int, invite: InviteRequest) -> dict[str, Any]:
        return await self._call("POST", ip, port, invite.node, "/invite", content=invite.model_dump_json())

    async def logs(self, ip: str, port: int, node: str, tail: int) -> dict[str, Any]:
        return await self._call("GET", ip, port, node, "/task/logs", params={"tail": str(tail)})

    async def restart(self, ip: str, port: int, node: str) -> dict[str, Any]:
        return await self._call("POST", ip, port, node, "/task/restart", content=b"")

    async def nudge(self, ip: str, port: int, node: str, timeout_s: float) -> None:
        """Ask the miner to heartbeat now: its assignment changed."""
        await self._call("POST", ip, port, node, "/heartbeat/now", content=b"", timeout_s=timeout_s)

    async def _call(
        self,
        method: str,
        ip: str,
        port: int,
        node: str,
        path: str,
        *,
        content: str | bytes | None = None,
        params: dict[str, str] | None = None,
        timeout_s: float | None = None,
    ) -> dict[str, Any]:
        try:
            self.addresses.check(ip)
            url = node_url(ip, port, path, self.scheme)
        except (AddressRefusedError, ValueError) as exc:
            raise PeerError(f"miner {node} at {ip!r} port {port} not called: {exc}", code="address_refused") from None
        auth = RequestSigner(self.account, audience=node.lower(), chain_id=self.chain_id)
        headers = {"content-type": "application/json"} if content is not None else {}
        deadline_s = timeout_s if timeout_s is not None else self.timeout_s
        try:
            response = await bounded_call(
                self.http,
                method,
                url,
                deadline_s=deadline_s,
                max_bytes=self.max_reply_bytes,
                auth=auth,
                content=content,
                params=params,
                headers=headers,
                timeout=deadline_s,
            )
        except PeerCallError as exc:
            raise PeerError(f"miner {node} at {url}: {exc}", code="bad_reply") from None
        except httpx.HTTPError as exc:
            raise PeerError(f"miner {node} at {url} unreachable: {type(exc).__name__}: {exc}") from None
        if response.status_code >= 400:
            code, message = _error_of(response)
            raise PeerError(f"{code}: {message}", status=response.status_code, code=code)
        try:
            body = response.json()
        except ValueError:
            raise PeerError(f"miner {node}: {path} answered with something other than JSON") from None
        if not isinstance(body, dict):
            raise PeerError(f"miner {node}: {path} answered with JSON that is not an object")
        return body
