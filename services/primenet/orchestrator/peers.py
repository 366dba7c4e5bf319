"""The orchestrator's calls to miners (invite, task logs, task restart, nudge), signed by the compute manager key.

Discovery, its other peer, is read through `primenet.core.discovery_client`.
"""

from __future__ import annotations

from typing import Any

import httpx
from eth_account.signers.local import LocalAccount

from primenet.core.auth import RequestSigner
from primenet.core.errors import PrimenetError
from primenet.core.models import InviteRequest


class PeerError(PrimenetError, RuntimeError):
    """A peer could not be reached, or answered with an error or a reply of the wrong shape."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def _error_of(response: httpx.Response) -> tuple[str, str]:
    try:
        error = response.json()["error"]
        return str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        return "http_error", response.text[:300]


class MinerClient:
    """Requests to one miner's API; the audience is the node's own address, as the miner requires."""

    def __init__(self, account: LocalAccount, *, chain_id: int, timeout_s: float) -> None:
        self.account = account
        self.chain_id = chain_id
        self.http = httpx.AsyncClient(timeout=timeout_s)

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
        host = f"[{ip}]" if ":" in ip else ip
        auth = RequestSigner(self.account, audience=node.lower(), chain_id=self.chain_id)
        headers = {"content-type": "application/json"} if content is not None else {}
        try:
            response = await self.http.request(
                method,
                f"http://{host}:{port}{path}",
                content=content,
                params=params,
                headers=headers,
                auth=auth,
                timeout=timeout_s if timeout_s is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.HTTPError as exc:
            raise PeerError(f"miner {node} at {host}:{port} unreachable: {type(exc).__name__}: {exc}") from None
        if response.status_code >= 400:
            code, message = _error_of(response)
            raise PeerError(f"{code}: {message}", status=response.status_code, code=code)
        try:
            body: dict[str, Any] = response.json()
        except ValueError:
            raise PeerError(f"miner {node}: {path} answered with something other than JSON") from None
        return body
