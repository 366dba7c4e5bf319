"""Signed-request authentication against a real Redis, through a real uvicorn server.

Every way a request can be wrong must be refused with its own error code, and a valid one must pass.
"""

# No `from __future__ import annotations`: FastAPI must see the route signatures' Depends(...) objects,
# which are local to build_app, not strings it would resolve in module globals.
import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from fastapi import Depends, FastAPI, Request

from primenet.core.app import service_app
from primenet.core.auth import (
    AUTH_HEADER,
    AuthPolicy,
    RequestAuthenticator,
    RequestSigner,
    Signer,
    allow_addresses,
    sign_request,
)
from primenet.core.redisdb import connect
from primenet.core.signing import SECP256K1_N
from primenet.devnet.processes import free_port
from primenet.devnet.serve import serve_in_thread

pytestmark = pytest.mark.integration

AUDIENCE = "test-service"
CHAIN_ID = 31337
MAX_BODY = 1024
RATE_LIMIT = 3
NONCE_CAPACITY = 4

caller: LocalAccount = Account.create()
admin: LocalAccount = Account.create()
stranger: LocalAccount = Account.create()


def build_app(redis_url: str) -> FastAPI:
    redis = connect(redis_url)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await redis.aclose()

    app = service_app(title="auth-test", max_body_bytes=MAX_BODY, lifespan=lifespan)
    policy = AuthPolicy(max_body_bytes=MAX_BODY)
    anyone = RequestAuthenticator(redis=redis, audience=AUDIENCE, chain_id=CHAIN_ID, policy=policy)
    admins = RequestAuthenticator(
        redis=redis, audience=AUDIENCE, chain_id=CHAIN_ID, policy=policy, authorize=allow_addresses([admin.address])
    )
    throttled = RequestAuthenticator(
        redis=redis,
        audience=AUDIENCE,
        chain_id=CHAIN_ID,
        policy=AuthPolicy(rate_limit=RATE_LIMIT, rate_window_s=60),
        key_prefix="throttled",
    )

    # A nonce store that holds NONCE_CAPACITY nonces, in Redis and in process (the miner's kind).
    small = AuthPolicy(nonce_capacity=NONCE_CAPACITY)
    bounded = {
        "redis": RequestAuthenticator(
            redis=redis, audience=AUDIENCE, chain_id=CHAIN_ID, policy=small, key_prefix="bounded"
        ),
        "memory": RequestAuthenticator(redis=None, audience=AUDIENCE, chain_id=CHAIN_ID, policy=small),
        # Nonces that live 2 s (a 1 s timestamp window): room comes back soon after they expire.
        "short": RequestAuthenticator(
            redis=redis,
            audience=AUDIENCE,
            chain_id=CHAIN_ID,
            policy=AuthPolicy(nonce_capacity=NONCE_CAPACITY, timestamp_window_s=1, future_skew_s=0),
            key_prefix="short",
        ),
    }

    @app.post("/bounded/short")
    async def bounded_short(signer: Annotated[Signer, Depends(bounded["short"])]) -> dict[str, str]:
        return {"signer": signer.address}

    @app.post("/bounded/redis")
    async def bounded_redis(signer: Annotated[Signer, Depends(bounded["redis"])]) -> dict[str, str]:
        return {"signer": signer.address}

    @app.post("/bounded/memory")
    async def bounded_memory(signer: Annotated[Signer, Depends(bounded["memory"])]) -> dict[str, str]:
        return {"signer": signer.address}

    @app.api_route("/echo", methods=["POST", "PUT"])
    async def echo(signer: Annotated[Signer, Depends(anyone)], request: Request) -> dict[str, Any]:
        return {"signer": signer.address, "body": (await request.body()).decode()}

    @app.get("/items")
    async def items(signer: Annotated[Signer, Depends(anyone)], page: int = 1) -> dict[str, Any]:
        return {"signer": signer.address, "page": page}

    @app.post("/admin")
    async def admin_only(signer: Annotated[Signer, Depends(admins)]) -> dict[str, str]:
        return {"signer": signer.address}

    @app.post("/throttled")
    async def throttled_route(signer: Annotated[Signer, Depends(throttled)]) -> dict[str, str]:
        return {"signer": signer.address}

    return app


@pytest.fixture(scope="module")
def base_url(redis_url: str) -> Iterator[str]:
    with serve_in_thread(build_app(redis_url), port=free_port()) as url:
        yield url


@pytest.fixture
async def http(base_url: str, redis_client: Any) -> AsyncIterator[httpx.AsyncClient]:
    # redis_client flushes the database, so nonces and rate windows start empty for every test.
    async with httpx.AsyncClient(base_url=base_url) as client:
        yield client


def signed(
    account: LocalAccount = caller,
    *,
    method: str = "POST",
    path: str = "/echo",
    body: bytes = b'{"hello":"world"}',
    audience: str = AUDIENCE,
    chain_id: int = CHAIN_ID,
    timestamp: int | None = None,
) -> dict[str, str]:
    header = sign_request(
        account, method=method, path=path, body=body, audience=audience, chain_id=chain_id, timestamp=timestamp
    )
    return {AUTH_HEADER: header}


def error_code(response: httpx.Response) -> str:
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["message"], body
    code: str = body["error"]["code"]
    return code


async def test_valid_signed_request_passes(http: httpx.AsyncClient) -> None:
    body = b'{"hello":"world"}'
    response = await http.post("/echo", content=body, headers=signed(body=body))
    assert response.status_code == 200, response.text
    assert response.json() == {"signer": caller.address.lower(), "body": body.decode()}


async def test_httpx_signer_signs_path_query_and_body(base_url: str, redis_client: Any) -> None:
    auth = RequestSigner(caller, audience=AUDIENCE, chain_id=CHAIN_ID)
    async with httpx.AsyncClient(base_url=base_url, auth=auth) as client:
        got = await client.get("/items", params={"page": 3})
        posted = await client.put("/echo", json={"b": [1, 2], "a": "ü"})
    assert got.status_code == 200, got.text
    assert got.json() == {"signer": caller.address.lower(), "page": 3}
    assert posted.status_code == 200, posted.text
    assert json.loads(posted.json()["body"]) == {"b": [1, 2], "a": "ü"}


async def send_forgery(http: httpx.AsyncClient, case: str) -> httpx.Response:
    """Each case breaks exactly one property of an otherwise valid request."""
    body = b'{"amount":1}'
    now = int(time.time())
    if case == "missing headers":
        return await http.post("/echo", content=body)
    if case == "malformed header":
        return await http.post("/echo", content=body, headers={AUTH_HEADER: "not json"})
    if case == "malformed signature":
        header = json.loads(signed(body=body)[AUTH_HEADER])
        header["signature"] = "0x1234"
        return await http.post("/echo", content=body, headers={AUTH_HEADER: json.dumps(header)})
    if case == "high-s twin":
        header = json.loads(signed(body=body)[AUTH_HEADER])
        raw = bytes.fromhex(header["signature"][2:])
        twin_s = SECP256K1_N - int.from_bytes(raw[32:64])  # (r, n - s, the other v) recovers the same key
        header["signature"] = "0x" + (raw[:32] + twin_s.to_bytes(32) + bytes((55 - raw[64],))).hex()
        return await http.post("/echo", content=body, headers={AUTH_HEADER: json.dumps(header)})
    if case == "signed by another key":
        header = json.loads(signed(stranger, body=body)[AUTH_HEADER])
        header["address"] = caller.address  # claims to be the caller, signed by the stranger
        return await http.post("/echo", content=body, headers={AUTH_HEADER: json.dumps(header)})
    if case == "tampered body":
        return await http.post("/echo", content=b'{"amount":1000}', headers=signed(body=body))
    if case == "tampered query":
        return await http.get("/items?page=2", headers=signed(method="GET", path="/items?page=1", body=b""))
    if case == "tampered path":
        return await http.post("/admin", content=body, headers=signed(admin, path="/echo", body=body))
    if case == "changed method":
        return await http.put("/echo", content=body, headers=signed(method="POST", body=body))
    if case == "wrong audience":
        return await http.post("/echo", content=body, headers=signed(body=body, audience="another-service"))
    if case == "wrong chain id":
        return await http.post("/echo", content=body, headers=signed(body=body, chain_id=1))
    if case == "expired timestamp":
        return await http.post("/echo", content=body, headers=signed(body=body, timestamp=now - 120))
    if case == "timestamp from the future":
        return await http.post("/echo", content=body, headers=signed(body=body, timestamp=now + 120))
    if case == "unauthorized signer":
        return await http.post("/admin", content=body, headers=signed(stranger, path="/admin", body=body))
    if case == "oversized body":
        big = b"x" * (MAX_BODY + 1)
        return await http.post("/echo", content=big, headers=signed(body=big))
    raise AssertionError(case)


FORGERIES = {
    "missing headers": (401, "auth_missing"),
    "malformed header": (400, "auth_malformed"),
    "malformed signature": (400, "signature_malformed"),
    "high-s twin": (400, "signature_not_canonical"),
    "signed by another key": (401, "signature_mismatch"),
    "tampered body": (401, "body_mismatch"),
    "tampered query": (401, "path_mismatch"),
    "tampered path": (401, "path_mismatch"),
    "changed method": (401, "method_mismatch"),
    "wrong audience": (401, "audience_mismatch"),
    "wrong chain id": (401, "chain_id_mismatch"),
    "expired timestamp": (401, "timestamp_expired"),
    "timestamp from the future": (401, "timestamp_in_future"),
    "unauthorized signer": (403, "signer_unauthorized"),
    "oversized body": (413, "body_too_large"),
}


@pytest.mark.parametrize("case", FORGERIES)
async def test_forgery_is_refused_with_its_own_code(http: httpx.AsyncClient, case: str) -> None:
    response = await send_forgery(http, case)
    assert (response.status_code, error_code(response)) == FORGERIES[case]


def test_every_failure_kind_has_a_distinct_code() -> None:
    more = {"nonce_replayed", "rate_limited", "ip_rate_limited", "nonce_store_full"}
    codes = {code for _, code in FORGERIES.values()} | more
    # tampered path and tampered query are one kind (the signed path+query); every other kind is distinct.
    assert len(codes) == len(FORGERIES) - 1 + len(more)


async def test_replayed_nonce_is_refused(http: httpx.AsyncClient) -> None:
    body = b'{"transfer":5}'
    headers = signed(body=body)
    first = await http.post("/echo", content=body, headers=headers)
    replay = await http.post("/echo", content=body, headers=headers)
    assert first.status_code == 200, first.text
    assert (replay.status_code, error_code(replay)) == (401, "nonce_replayed")


async def test_streamed_oversized_body_is_refused(http: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"y" * (MAX_BODY // 2)  # no Content-Length: the limit must hold while streaming

    response = await http.post("/echo", content=chunks(), headers=signed(body=b"y" * (MAX_BODY * 2)))
    assert (response.status_code, error_code(response)) == (413, "body_too_large")


async def test_rate_limit_per_signer(http: httpx.AsyncClient) -> None:
    statuses = []
    for _ in range(RATE_LIMIT + 1):
        response = await http.post("/throttled", content=b"", headers=signed(path="/throttled", body=b""))
        statuses.append(response.status_code)
    assert statuses == [200] * RATE_LIMIT + [429]
    assert error_code(response) == "rate_limited"
    assert int(response.headers["Retry-After"]) in range(1, 62)  # the rest of the 60 s window, at least 1 s
    # Another signer has its own budget.
    other = await http.post("/throttled", content=b"", headers=signed(admin, path="/throttled", body=b""))
    assert other.status_code == 200, other.text


async def test_authorized_signer_passes_the_role_check(http: httpx.AsyncClient) -> None:
    response = await http.post("/admin", content=b"{}", headers=signed(admin, path="/admin", body=b"{}"))
    assert response.status_code == 200, response.text
    assert response.json() == {"signer": admin.address.lower()}


async def test_refusals_store_nothing_a_valid_retry_needs(http: httpx.AsyncClient) -> None:
    """A request refused before its signature was proven must not burn its nonce."""
    body = b'{"n":1}'
    headers = signed(body=body)
    tampered = await http.post("/echo", content=b'{"n":2}', headers=headers)
    retry = await http.post("/echo", content=body, headers=headers)
    assert error_code(tampered) == "body_mismatch"
    assert retry.status_code == 200, retry.text


async def test_concurrent_replays_admit_exactly_one(http: httpx.AsyncClient) -> None:
    body = b'{"race":true}'
    headers = signed(body=body)
    responses = await asyncio.gather(*(http.post("/echo", content=body, headers=headers) for _ in range(20)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [401] * 19
    assert {error_code(r) for r in responses if r.status_code == 401} == {"nonce_replayed"}


async def test_unreachable_redis_is_a_503_not_a_crash() -> None:
    with serve_in_thread(build_app(f"redis://127.0.0.1:{free_port()}/0"), port=free_port()) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            body = b"{}"
            response = await client.post("/echo", content=body, headers=signed(body=body))
    assert (response.status_code, error_code(response)) == (503, "store_unavailable")
    assert response.headers["Retry-After"] == "5"


@pytest.mark.parametrize("store", ["redis", "memory"])
async def test_a_full_nonce_store_refuses_and_a_sniffed_request_stays_refused(
    http: httpx.AsyncClient, store: str
) -> None:
    """Flooding the store must not make it forget the nonce of a request an attacker recorded on the wire."""
    path = f"/bounded/{store}"
    sniffed = signed(path=path, body=b"")
    assert (await http.post(path, headers=sniffed)).status_code == 200
    flood = [await http.post(path, headers=signed(path=path, body=b"")) for _ in range(NONCE_CAPACITY + 3)]
    assert [r.status_code for r in flood] == [200] * (NONCE_CAPACITY - 1) + [503] * 4
    assert {error_code(r) for r in flood[NONCE_CAPACITY - 1 :]} == {"nonce_store_full"}
    assert int(flood[-1].headers["Retry-After"]) >= 1
    replay = await http.post(path, headers=sniffed)
    assert (replay.status_code, error_code(replay)) == (401, "nonce_replayed")


async def test_the_redis_nonce_store_has_room_again_once_its_nonces_expire(http: httpx.AsyncClient) -> None:
    path = "/bounded/short"
    statuses = [(await http.post(path, headers=signed(path=path, body=b""))).status_code for _ in range(5)]
    assert statuses == [200] * NONCE_CAPACITY + [503]
    await asyncio.sleep(3.5)  # 2 s of nonce life, counted in 1 s buckets: at most 3 s until no longer counted
    assert (await http.post(path, headers=signed(path=path, body=b""))).status_code == 200
