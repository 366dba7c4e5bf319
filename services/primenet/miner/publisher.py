"""The node's record in discovery: signed by the node key, uploaded at start and again when IP or specs change.

Free disk space moves all the time; it is compared in whole GB so that a few written megabytes do not cause an
upload, while a record nobody changed is still re-sent every `refresh_s` (discovery may have lost it).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog
from eth_account.signers.local import LocalAccount

from primenet.core.auth import RequestSigner
from primenet.core.errors import PrimenetError
from primenet.core.models import ComputeSpecs, NodeRecord

log = structlog.get_logger(__name__)


class PublishError(PrimenetError, RuntimeError):
    """Discovery refused the record (a 4xx other than rate limiting): retrying the same record will not help."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"discovery refused the node record ({status} {code}): {message}")
        self.status = status
        self.code = code


def route_ip(url: str) -> str:
    """The local address the kernel would use to reach `url`'s host (a UDP connect sends nothing)."""
    host = urlsplit(url).hostname or "127.0.0.1"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((host, 9))
        address: str = probe.getsockname()[0]
    return address


def _comparable(record: NodeRecord) -> str:
    specs = record.specs.model_copy(update={"storage_free_gb": float(int(record.specs.storage_free_gb))})
    return record.model_copy(update={"specs": specs}).model_dump_json()


class DiscoveryPublisher:
    def __init__(
        self,
        *,
        discovery_url: str,
        node: LocalAccount,
        provider: str,
        pool_id: int,
        port: int,
        public_ip: str,
        chain_id: int,
        specs: Callable[[], ComputeSpecs],
        refresh_s: float = 600.0,
        timeout_s: float = 30.0,
    ) -> None:
        self.discovery_url = discovery_url.rstrip("/")
        self.node = node
        self.provider = provider
        self.pool_id = pool_id
        self.port = port
        self.public_ip = public_ip
        self.specs = specs
        self.refresh_s = refresh_s
        self.signer = RequestSigner(node, audience="discovery", chain_id=chain_id)
        self.timeout_s = timeout_s
        self._last: str | None = None
        self._last_at = 0.0

    def ip(self) -> str:
        return route_ip(self.discovery_url) if self.public_ip == "auto" else self.public_ip

    def record(self) -> NodeRecord:
        return NodeRecord(
            node=self.node.address,
            provider=self.provider,
            ip=self.ip(),
            port=self.port,
            pool_id=self.pool_id,
            specs=self.specs(),
        )

    async def publish(self, *, force: bool = False) -> str | None:
        """Upload when the record changed, is due for a refresh, or `force`; returns discovery's result or None.

        Raises `PublishError` for a refusal, `httpx.HTTPError` when discovery is unreachable or failing (5xx).
        """
        record = self.record()
        key = _comparable(record)
        if not force and key == self._last and time.monotonic() - self._last_at < self.refresh_s:
            return None
        async with httpx.AsyncClient(auth=self.signer, timeout=self.timeout_s) as client:
            response = await client.put(f"{self.discovery_url}/api/nodes", json=record.model_dump(mode="json"))
        if 400 <= response.status_code < 500 and response.status_code != 429:
            error = _error(response)
            raise PublishError(response.status_code, error[0], error[1])
        response.raise_for_status()
        result = str(response.json().get("result", "ok"))
        self._last, self._last_at = key, time.monotonic()
        log.info("node record published", result=result, ip=record.ip, port=record.port, pool_id=record.pool_id)
        return result

    async def own_record(self) -> dict[str, Any] | None:
        """The node's record as discovery holds it, read with the node's own signature (discovery shows a record
        only to its node and the admin); None when discovery has none.

        Raises `PublishError` for another refusal, `httpx.HTTPError` when discovery is unreachable or failing."""
        async with httpx.AsyncClient(auth=self.signer, timeout=self.timeout_s) as client:
            response = await client.get(f"{self.discovery_url}/api/nodes/{self.node.address}")
        if response.status_code == 404:
            return None
        if 400 <= response.status_code < 500:
            raise PublishError(response.status_code, *_error(response))
        response.raise_for_status()
        record: dict[str, Any] = response.json()
        return record


def _error(response: httpx.Response) -> tuple[str, str]:
    try:
        error = response.json()["error"]
        return str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        return "http_error", response.text[:500]
