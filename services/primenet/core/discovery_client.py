"""Discovery's read API as its readers use it: a listing (the validator's, or one pool's) and the change feed.

Signed GETs by the reader's key: discovery checks VALIDATOR_ROLE on chain for the validator listing, the pool's
creator or compute manager for a pool listing. Replies are parsed leniently (unknown fields ignored), so
discovery can add fields without breaking the validators and orchestrators already in the field.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
from eth_account.signers.local import LocalAccount
from pydantic import BaseModel, ConfigDict, ValidationError

from primenet.core.auth import RequestSigner
from primenet.core.errors import PrimenetError
from primenet.core.models import SPECS_HASH_PATTERN, ComputeSpecs, FeedPage, NodeRecord, SpecsBinding, specs_hash


class DiscoveryError(PrimenetError, RuntimeError):
    """Discovery could not be read (unreachable, an HTTP error, or a reply of the wrong shape)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ListedNode(_Lenient):
    """A node as discovery lists it: its record plus what the chain said at discovery's last sync."""

    record: NodeRecord
    is_validated: bool
    updated_at: float = 0.0  # when the miner last published the record
    specs_hash: str | None = None  # the hash a validator bound the validation to (None: never bound)

    @classmethod
    def parse(cls, item: dict[str, Any]) -> ListedNode:
        fields = {key: item[key] for key in NodeRecord.model_fields if key in item}
        bound = item.get("specs_hash")
        return cls(
            record=NodeRecord.model_validate(fields),
            is_validated=bool(item.get("is_validated", False)),
            updated_at=float(item.get("updated_at", 0.0)),
            specs_hash=bound if isinstance(bound, str) and re.fullmatch(SPECS_HASH_PATTERN, bound) else None,
        )

    @property
    def specs_validated(self) -> bool:
        """The record's specs are the ones a validator vouched for (checked here, not taken on discovery's word)."""
        return self.specs_hash is not None and self.specs_hash == specs_hash(self.record.specs)


class DiscoveryReader:
    def __init__(
        self,
        url: str,
        account: LocalAccount,
        *,
        chain_id: int,
        audience: str = "discovery",
        timeout_s: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.timeout_s = timeout_s
        self.skipped_records = 0  # listed records left out because they do not parse (see `_listing`)
        self.http = httpx.AsyncClient(
            base_url=url.rstrip("/"),
            auth=RequestSigner(account, audience=audience, chain_id=chain_id),
            timeout=timeout_s,
            transport=transport,
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> DiscoveryReader:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def listing(self, *, validated: bool | None = None) -> tuple[list[ListedNode], str]:
        """The validator listing (only unvalidated nodes with `validated=False`) and the feed cursor to follow."""
        params = {} if validated is None else {"validated": str(validated).lower()}
        return await self._listing("/api/validator", params)

    async def pool_listing(self, pool_id: int) -> tuple[list[ListedNode], str]:
        """The nodes that chose pool `pool_id` (for its creator or compute manager) and the feed cursor."""
        return await self._listing(f"/api/pool/{pool_id}", {})

    async def _listing(self, path: str, params: dict[str, str]) -> tuple[list[ListedNode], str]:
        body = await self._get(path, params, self.timeout_s)
        try:
            items, cursor = list(body["nodes"]), str(body["cursor"])
        except (KeyError, TypeError, ValueError) as exc:
            raise DiscoveryError(f"unexpected listing from discovery ({path}): {exc}") from None
        nodes: list[ListedNode] = []
        for item in items:
            try:
                nodes.append(ListedNode.parse(item))
            except (KeyError, TypeError, ValueError):  # ValidationError is a ValueError
                # One record this version refuses (e.g. a host name as its IP, stored by an older discovery) is
                # left out rather than failing the listing of every other node.
                self.skipped_records += 1
        return nodes, cursor

    async def node(self, address: str) -> ListedNode | None:
        """One node's listing entry (the validator listing is the record a validator may read)."""
        nodes, _ = await self.listing()
        return next((n for n in nodes if n.record.node == address.lower()), None)

    async def bind_specs(self, node: str, specs: ComputeSpecs) -> None:
        """Bind the node's validation to these specs (`PUT /api/validator/nodes/{node}/specs`, VALIDATOR_ROLE).

        DiscoveryError (with the status) when discovery refuses, e.g. 409 `specs_changed`: the node uploaded
        other specs since they were challenged."""
        body = SpecsBinding(specs=specs, specs_hash=specs_hash(specs)).model_dump(mode="json")
        path = f"/api/validator/nodes/{node.lower()}/specs"
        try:
            response = await self.http.put(path, json=body)
        except httpx.HTTPError as exc:
            raise DiscoveryError(f"discovery unreachable: {type(exc).__name__}: {exc}") from None
        if response.status_code != 200:
            raise DiscoveryError(
                f"PUT {path}: HTTP {response.status_code}: {response.text[:300]}", status=response.status_code
            )

    async def events(self, since: str, wait_s: float, *, pool_id: int | None = None) -> FeedPage:
        """Changes after `since` (of one pool's nodes with `pool_id`); discovery holds the request up to `wait_s`
        until there is one."""
        params = {"since": since, "timeout": f"{wait_s:g}"} | ({} if pool_id is None else {"pool_id": str(pool_id)})
        body = await self._get("/api/events", params, wait_s + self.timeout_s)
        try:
            return FeedPage.model_validate(body)
        except ValidationError as exc:
            raise DiscoveryError(f"unexpected feed page from discovery: {exc}") from None

    async def _get(self, path: str, params: dict[str, str], timeout_s: float) -> Any:
        try:
            response = await self.http.get(path, params=params, timeout=timeout_s)
        except httpx.HTTPError as exc:
            raise DiscoveryError(f"discovery unreachable: {type(exc).__name__}: {exc}") from None
        if response.status_code != 200:
            raise DiscoveryError(
                f"GET {path}: HTTP {response.status_code}: {response.text[:300]}", status=response.status_code
            )
        try:
            return response.json()
        except ValueError:
            raise DiscoveryError(f"GET {path}: the reply is not JSON") from None
