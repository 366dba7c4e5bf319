"""Keys from 0600 files only, the cached authorizer, and the one JSON error shape."""

from __future__ import annotations

import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from eth_account import Account
from pydantic import BaseModel

from primenet.core.app import service_app
from primenet.core.auth import allow_addresses, cached
from primenet.core.errors import ApiError
from primenet.core.files import write_atomically
from primenet.core.keys import PrivateKeyError, account_from_key, load_key, read_key_file

pytestmark = pytest.mark.unit

KEY = "0x" + "11" * 32


def test_key_file_must_be_private(tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    path.write_text(KEY + "\n")
    path.chmod(0o644)
    with pytest.raises(PrivateKeyError, match="chmod 600"):
        read_key_file(path)
    path.chmod(0o600)
    assert read_key_file(path).get_secret_value() == KEY


def test_key_from_the_environment_and_missing_key_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PRIMENET_TEST_KEY", raising=False)
    with pytest.raises(PrivateKeyError, match="PRIMENET_TEST_KEY"):
        load_key("PRIMENET_TEST_KEY")
    monkeypatch.setenv("PRIMENET_TEST_KEY", KEY)
    key = load_key("PRIMENET_TEST_KEY")
    assert KEY not in repr(key)
    assert account_from_key(key).address == Account.from_key(KEY).address


def test_malformed_key_error_does_not_echo_the_key() -> None:
    from pydantic import SecretStr

    secret = "0xdeadbeefnothex"
    with pytest.raises(PrivateKeyError) as raised:
        account_from_key(SecretStr(secret))
    assert secret not in str(raised.value)
    assert raised.value.__cause__ is None


async def test_cached_authorizer_remembers_until_ttl() -> None:
    calls: list[str] = []
    now = [0.0]

    async def on_chain_role(address: str) -> bool:
        calls.append(address)
        return address == "0xaa"

    check = cached(on_chain_role, ttl_s=10, clock=lambda: now[0])
    assert await check("0xaa") is True
    assert await check("0xbb") is False
    assert await check("0xaa") is True
    assert calls == ["0xaa", "0xbb"]
    now[0] = 11
    assert await check("0xaa") is True
    assert calls == ["0xaa", "0xbb", "0xaa"]


async def test_allow_addresses_ignores_case() -> None:
    check = allow_addresses(["0xAbC0000000000000000000000000000000000001"])
    assert await check("0xabc0000000000000000000000000000000000001") is True
    assert await check("0xabc0000000000000000000000000000000000002") is False


class Item(BaseModel):
    count: int


async def chunks(body: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


async def test_every_error_path_uses_the_json_error_shape() -> None:
    app = service_app(title="t", max_body_bytes=64)

    @app.post("/items")
    async def create(item: Item) -> Item:
        if item.count < 0:
            raise ApiError(409, "negative_count", "count must not be negative")
        return item

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        cases = {
            "invalid_request": await client.post("/items", json={"count": "many"}),
            "negative_count": await client.post("/items", json={"count": -1}),
            "not_found": await client.get("/nowhere"),
            "method_not_allowed": await client.get("/items"),
            "body_too_large": await client.post("/items", content=b"x" * 65),
        }
        # Streamed with no Content-Length into a route that parses a body: FastAPI turns a failed body read into
        # a 400 of its own, which must still come out as 413.
        streamed = await client.post("/items", content=chunks(b'{"count": 1}' + b" " * 100, size=16))
        ok = await client.post("/items", json={"count": 2})
    for code, response in cases.items():
        assert 400 <= response.status_code < 500, (code, response.status_code)
        assert response.json()["error"]["code"] == code
    assert cases["invalid_request"].json()["error"]["message"].startswith("body.count")
    assert ok.json() == {"count": 2}
    assert (streamed.status_code, streamed.json()["error"]["code"]) == (413, "body_too_large")


def test_atomic_write_replaces_whole_and_keeps_the_mode(tmp_path: Path) -> None:
    target = tmp_path / "state" / "miner.json"
    write_atomically(target, b"old")
    stale = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    stale.write_bytes(b"left by a crash")
    stale.chmod(0o644)
    write_atomically(target, b"new")
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert not stale.exists()
    assert sorted(p.name for p in target.parent.iterdir()) == ["miner.json"]
