"""The orchestrator's two peers over HTTP, both signed by the compute manager key:
discovery (the pool's listing and its change feed) and miners (invite, task logs, task restart).

Discovery's replies are parsed leniently (unknown fields ignored) so it can add fields without breaking us.
"""

from __future__ import annotations

from typing import Any

import httpx
from eth_account.signers.local import LocalAccount
from pydantic import BaseModel, ConfigDict, ValidationError

from primenet.core.auth import RequestSigner
from primenet.core.models import FeedPage, InviteRequest, NodeRecord


class PeerError(RuntimeError):
    """A peer could not be reached, or answered with an error or a reply of the wrong shape."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class ListedNode(BaseModel):
    model_config = ConfigDict(extra="ignore")

    record: NodeRecord
    is_validated: bool
    updated_at: float

    @classmethod
    def parse(cls, item: dict[str, Any]) -> ListedNode:
        fields = {key: item[key] for key in NodeRecord.model_fields if key in item}
        return cls(
            record=NodeRecord.model_validate(fields),
            is_validated=bool(item.get("is_validated", False)),
            updated_at=float(item.get("updated_at", 0.0)),
        )


def _error_of(response: httpx.Response) -> tuple[str, str]:
    try:
        error = response.json()["error"]
        return str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        return "http_error", response.text[:300]


class DiscoveryClient:
    def __init__(
        self, url: str, account: LocalAccount, *, chain_id: int, pool_id: int, audience: str, timeout_s: float = 10.0
    ) -> None:
        self.pool_id = pool_id
        self.timeout_s = timeout_s
        self.http = httpx.AsyncClient(
            base_url=url, auth=RequestSigner(account, audience=audience, chain_id=chain_id), timeout=timeout_s
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def listing(self) -> tuple[list[ListedNode], str]:
        body = await self._get(f"/api/pool/{self.pool_id}", {}, self.timeout_s)
        try:
            return [ListedNode.parse(item) for item in body["nodes"]], str(body["cursor"])
        except (KeyError, TypeError, ValueError, ValidationError) as exc:
            raise PeerError(f"unexpected pool listing from discovery: {exc}") from None

    async def events(self, since: str, wait_s: float) -> FeedPage:
        params = {"since": since, "timeout": f"{wait_s:g}", "pool_id": str(self.pool_id)}
        body = await self._get("/api/events", params, wait_s + self.timeout_s)
        try:
            return FeedPage.model_validate(body)
        except ValidationError as exc:
            raise PeerError(f"unexpected feed page from discovery: {exc}") from None

    async def _get(self, path: str, params: dict[str, str], timeout_s: float) -> Any:
        try:
            response = await self.http.get(path, params=params, timeout=timeout_s)
        except httpx.HTTPError as exc:
            raise PeerError(f"discovery unreachable: {type(exc).__name__}: {exc}") from None
        if response.status_code != 200:
            code, message = _error_of(response)
            raise PeerError(f"GET {path}: HTTP {response.status_code} {code}: {message}", status=response.status_code)
        try:
            return response.json()
        except ValueError:
            raise PeerError(f"GET {path}: the reply is not JSON") from None


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
    ) -> dict[str, Any]:
        host = f"[{ip}]" if ":" in ip else ip
        auth = RequestSigner(self.account, audience=node.lower(), chain_id=self.chain_id)
        headers = {"content-type": "application/json"} if content is not None else {}
        try:
            response = await self.http.request(
                method, f"http://{host}:{port}{path}", content=content, params=params, headers=headers, auth=auth
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
