"""Cheap refusals before costly work, each attack performed against the real services.

Discovery, the miner and two orchestrators run on uvicorn against the session devnet's Anvil and Redis; where the
chain matters, the service's RPC goes through a loopback proxy that counts every call, and signature recoveries
are counted on the real function the authenticator calls.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from fastapi import FastAPI

import primenet.core.auth as auth_module
from primenet.chain.contracts import Network
from primenet.core.auth import AUTH_HEADER, AuthPolicy, RequestSigner, sign_request
from primenet.core.models import ComputeSpecs, Heartbeat, NodeRecord
from primenet.core.redisdb import connect
from primenet.core.signing import SECP256K1_N
from primenet.devnet.accounts import role_account
from primenet.devnet.local import DevnetState
from primenet.devnet.processes import free_port
from primenet.devnet.serve import serve_in_thread
from primenet.discovery.app import create_app as create_discovery
from primenet.discovery.settings import DiscoverySettings
from primenet.orchestrator.app import create_app as create_orchestrator
from primenet.orchestrator.models import NodeStatus
from primenet.orchestrator.settings import OrchestratorSettings
from primenet.orchestrator.store import OrchestratorStore
from rpc_counter import CountingRpcProxy
from service_apps import miner_app, pool_audience

pytestmark = pytest.mark.integration

CHAIN_ID = 31337
JSON = {"content-type": "application/json"}
SPECS = ComputeSpecs(cpu_cores=4, ram_mib=8192)


def code(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["message"], body
    return response.status_code, str(body["error"]["code"])


@pytest.fixture
def recoveries(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every signature recovery the authenticators do (the real function, wrapped to count its calls)."""
    seen: list[str] = []
    real = auth_module.recover_digest_signer

    def counting(digest: bytes, signature: bytes) -> str:
        address = real(digest, signature)
        seen.append(address)
        return address

    monkeypatch.setattr(auth_module, "recover_digest_signer", counting)
    return seen


@pytest.fixture
def rpc(devnet: DevnetState) -> Iterator[tuple[str, CountingRpcProxy]]:
    proxy = CountingRpcProxy(devnet.rpc_url)
    with serve_in_thread(proxy, port=free_port()) as url:
        yield url, proxy


def selector(network: Network, contract: str, function: str, *args: Any) -> str:
    return str(getattr(network, contract).encode_abi(function, args=list(args)))[:10]


# --- many throwaway keys from one host ------------------------------------------------------------


async def test_throwaway_keys_from_one_ip_get_429_before_recovery_or_chain_lookup(
    devnet: DevnetState, network: Network, rpc: tuple[str, CountingRpcProxy], recoveries: list[str]
) -> None:
    rpc_url, proxy = rpc
    has_role = selector(network, "prime", "hasRole", b"\0" * 32, role_account("validator").address)
    settings = DiscoverySettings(
        redis_url=devnet.redis_url,
        rpc_url=rpc_url,
        deployment_file=Path(devnet.deployment_file),
        role_cache_s=30,
        sync_interval_s=3600,
        key_prefix="ipflood" + secrets.token_hex(3),
        auth=AuthPolicy(ip_rate_limit=8),
    )
    with serve_in_thread(create_discovery(settings), port=free_port()) as url:

        async def listing(account: LocalAccount) -> httpx.Response:
            async with httpx.AsyncClient(
                base_url=url, auth=RequestSigner(account, audience="discovery", chain_id=CHAIN_ID)
            ) as http:
                return await http.get("/api/validator")

        assert (await listing(role_account("validator"))).status_code == 200
        assert (len(recoveries), proxy.calls(has_role)) == (1, 1)

        # One unknown key, again and again: recovered each time, looked up on chain once ("no" is cached too).
        stranger = Account.create()
        for _ in range(3):
            assert code(await listing(stranger)) == (403, "signer_unauthorized")
        assert (len(recoveries), proxy.calls(has_role)) == (4, 2)

        # Fresh keys, each one lookup, until this host's budget of 8 signed requests is spent ...
        for _ in range(4):
            assert code(await listing(Account.create())) == (403, "signer_unauthorized")
        assert (len(recoveries), proxy.calls(has_role)) == (8, 6)

        # ... then every further key is refused before its signature is recovered or anything is asked of the chain.
        for _ in range(25):
            refused = await listing(Account.create())
            assert code(refused) == (429, "ip_rate_limited")
            assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert (len(recoveries), proxy.calls(has_role)) == (8, 6)
        # Even the real validator waits for the next window now: the budget is the host's, whatever the key.
        assert code(await listing(role_account("validator"))) == (429, "ip_rate_limited")

    # Refused signers were never admitted: no nonce of theirs is stored (authorize runs before admission).
    redis = connect(devnet.redis_url)
    try:
        stored = [key async for key in redis.scan_iter(match="auth-v:nonce:*")]
    finally:
        await redis.aclose()
    assert all(role_account("validator").address.lower() in key for key in stored), stored


async def test_keys_that_own_no_pool_cost_the_miner_one_pool_read_and_no_nonce(
    devnet: DevnetState, network: Network, rpc: tuple[str, CountingRpcProxy], tmp_path: Path
) -> None:
    rpc_url, proxy = rpc
    get_pool = selector(network, "pools", "getComputePool", 0)
    app, settings, node = miner_app(devnet, rpc_url, tmp_path)
    with serve_in_thread(app, port=settings.port) as url:
        for _ in range(20):
            signer = RequestSigner(Account.create(), audience=node.address.lower(), chain_id=CHAIN_ID)
            async with httpx.AsyncClient(base_url=url, auth=signer) as http:
                assert code(await http.post("/heartbeat/now")) == (403, "not_pool_owner")
        # The pool's owners are read whole, once per TTL: twenty strangers cost one chain call, not twenty.
        assert proxy.calls(get_pool) == 1
        # And none of them was admitted: the miner's in-process nonce store holds nothing of theirs.
        assert len(app.state.pool_owners_auth._admissions._nonces) == 0
        owner = RequestSigner(role_account("orchestrator"), audience=node.address.lower(), chain_id=CHAIN_ID)
        async with httpx.AsyncClient(base_url=url, auth=owner) as http:
            assert (await http.post("/heartbeat/now")).status_code == 202
        assert proxy.calls(get_pool) == 1
        assert len(app.state.pool_owners_auth._admissions._nonces) == 1


# --- the orchestrator's audience is its pool; only low-s signatures ------------------------------


async def healthy_node(redis_url: str, prefix: str, node: LocalAccount, pool_id: int) -> None:
    """The node as the orchestrator's monitor stores a listed one, then Healthy as its first heartbeat leaves it."""
    redis = connect(redis_url)
    try:
        store = OrchestratorStore(redis, prefix=prefix)
        record = NodeRecord(
            node=node.address, provider=role_account("provider").address, ip="127.0.0.1", port=9, pool_id=pool_id,
            specs=SPECS,
        )  # fmt: skip
        now = time.time()
        await store.upsert_listed(record, listed_at=now, now=now)
        await store.transition(node.address, NodeStatus.HEALTHY, now=now, fields={"last_heartbeat": repr(now)})
    finally:
        await redis.aclose()


@pytest.fixture(scope="module")
def orchestrators(devnet: DevnetState) -> Iterator[dict[int, tuple[str, str]]]:
    """Pool id -> (URL, Redis prefix) of an orchestrator for pool 0 and one for pool 1, on one Redis and chain."""
    (app_0, port_0, prefix_0), (app_1, port_1, prefix_1) = orchestrator_for(devnet, 0), orchestrator_for(devnet, 1)
    with serve_in_thread(app_0, port=port_0) as url_0, serve_in_thread(app_1, port=port_1) as url_1:
        yield {0: (url_0, prefix_0), 1: (url_1, prefix_1)}


def orchestrator_for(devnet: DevnetState, pool_id: int) -> tuple[FastAPI, int, str]:
    port, prefix = free_port(), f"aud{pool_id}" + secrets.token_hex(3)
    settings = OrchestratorSettings(
        redis_url=devnet.redis_url,
        rpc_url=devnet.rpc_url,
        deployment_file=Path(devnet.deployment_file),
        discovery_url="http://127.0.0.1:9",
        public_url=f"http://127.0.0.1:{port}",
        pool_id=pool_id,
        key_prefix=prefix,
    )
    return create_orchestrator(settings, role_account("orchestrator")), port, prefix


def signed_beat(devnet: DevnetState, node: LocalAccount, pool_id: int) -> tuple[bytes, dict[str, str]]:
    body = Heartbeat(address=node.address, version="test", timestamp=time.time()).model_dump_json().encode()
    header = sign_request(
        node, method="POST", path="/heartbeat", body=body, audience=pool_audience(devnet, pool_id), chain_id=CHAIN_ID
    )
    return body, {AUTH_HEADER: header, **JSON}


async def test_a_beat_signed_for_pool_0_is_refused_by_pool_1s_orchestrator(
    devnet: DevnetState, orchestrators: dict[int, tuple[str, str]]
) -> None:
    node = Account.create()
    for pool_id, (_, prefix) in orchestrators.items():
        await healthy_node(devnet.redis_url, prefix, node, pool_id)  # known to both: only the audience differs
    pool_0, pool_1 = orchestrators[0][0], orchestrators[1][0]
    async with httpx.AsyncClient() as http:
        body, headers = signed_beat(devnet, node, 0)
        # Sniffed on its way to pool 0's orchestrator and sent to pool 1's first: refused there ...
        assert code(await http.post(f"{pool_1}/heartbeat", content=body, headers=headers)) == (
            401,
            "audience_mismatch",
        )
        # ... and still good where it was meant to go (the refusal did not use its nonce).
        assert (await http.post(f"{pool_0}/heartbeat", content=body, headers=headers)).status_code == 200
        body, headers = signed_beat(devnet, node, 1)
        assert (await http.post(f"{pool_1}/heartbeat", content=body, headers=headers)).status_code == 200
        assert code(await http.post(f"{pool_0}/heartbeat", content=body, headers=headers)) == (
            401,
            "audience_mismatch",
        )


def high_s_twin(header: str) -> str:
    """The same signature re-encoded as (r, n - s, the other v): it recovers the same key, but is the malleable twin."""
    claims = json.loads(header)
    raw = bytes.fromhex(claims["signature"][2:])
    s = int.from_bytes(raw[32:64])
    twin = raw[:32] + (SECP256K1_N - s).to_bytes(32) + bytes((55 - raw[64],))  # v: 27 <-> 28
    return json.dumps({**claims, "signature": "0x" + twin.hex()})


async def test_a_high_s_twin_of_a_valid_beat_is_refused(
    devnet: DevnetState, orchestrators: dict[int, tuple[str, str]]
) -> None:
    node = Account.create()
    url, prefix = orchestrators[0]
    await healthy_node(devnet.redis_url, prefix, node, 0)
    body, headers = signed_beat(devnet, node, 0)
    twin = {**headers, AUTH_HEADER: high_s_twin(headers[AUTH_HEADER])}
    async with httpx.AsyncClient(base_url=url) as http:
        assert code(await http.post("/heartbeat", content=body, headers=twin)) == (400, "signature_not_canonical")
        assert (await http.post("/heartbeat", content=body, headers=headers)).status_code == 200
        # Sent after the original, the twin is still refused for what it is, not as a replay of it.
        assert code(await http.post("/heartbeat", content=body, headers=twin)) == (400, "signature_not_canonical")


async def test_beats_of_unknown_keys_record_no_nonce_at_the_orchestrator(
    devnet: DevnetState, orchestrators: dict[int, tuple[str, str]]
) -> None:
    url, prefix = orchestrators[0]
    redis = connect(devnet.redis_url)

    async def stored_nonces() -> int:
        return len([key async for key in redis.scan_iter(match=f"{prefix}:auth:nonce:*")])

    try:
        before = await stored_nonces()
        async with httpx.AsyncClient(base_url=url) as http:
            for _ in range(20):
                body, headers = signed_beat(devnet, Account.create(), 0)
                assert code(await http.post("/heartbeat", content=body, headers=headers)) == (403, "unknown_node")
            # Only a node this orchestrator knows is admitted, so the flood above stored nothing.
            assert await stored_nonces() == before
            node = Account.create()
            await healthy_node(devnet.redis_url, prefix, node, 0)
            body, headers = signed_beat(devnet, node, 0)
            assert (await http.post("/heartbeat", content=body, headers=headers)).status_code == 200
            assert await stored_nonces() == before + 1
    finally:
        await redis.aclose()
