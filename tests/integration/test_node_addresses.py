"""Node addresses that would turn the validator and the orchestrator against us (SSRF), attacked for real.

Each attack is a signed upload to a real discovery (real Anvil, Redis, uvicorn) or a node record handed to the
real validator or orchestrator client code. No packet is sent outside 127.0.0.0/8: addresses in other ranges are
only uploaded (discovery never connects to nodes), and the "was anything sent?" checks use a recording listener on
127.0.0.1 that a loopback-refusing policy must never reach.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account.signers.local import LocalAccount

from hostile import answer, invite_for, serving
from primenet.core.auth import RequestSigner
from primenet.core.discovery_client import DiscoveryReader
from primenet.core.models import ComputeSpecs, NodeRecord
from primenet.core.nodeaddr import AddressPolicy, AddressRefusedError
from primenet.core.redisdb import connect
from primenet.devnet.accounts import role_account
from primenet.devnet.local import DevnetState
from primenet.devnet.processes import free_port
from primenet.devnet.serve import serve_in_thread
from primenet.discovery.app import create_app as create_discovery
from primenet.discovery.settings import DiscoverySettings
from primenet.orchestrator.peers import MinerClient, PeerError
from primenet.validator.app import create_app as create_validator
from primenet.validator.challenger import ChallengeClient
from primenet.validator.settings import ValidatorSettings
from primenet.validator.store import ValidatorStore
from waiting import until

NewNode = Callable[..., Awaitable[LocalAccount]]
ADMIN_TOKEN = "test-admin-token-0123456789"
SPECS = ComputeSpecs(cpu_model="test cpu", cpu_cores=2, ram_mib=4096, storage_path="/tmp", storage_free_gb=10.0)
provider = role_account("provider")
manager = role_account("orchestrator")
validator = role_account("validator")


def discovery_settings(devnet: DevnetState, prefix: str, **policy: bool) -> DiscoverySettings:
    return DiscoverySettings(
        redis_url=devnet.redis_url,
        rpc_url=devnet.rpc_url,
        chain_id=devnet.chain_id,
        deployment_file=Path(devnet.deployment_file),
        admin_token=ADMIN_TOKEN,
        sync_interval_s=0.2,
        role_cache_s=0.5,
        key_prefix=prefix,
        allow_loopback_nodes=policy.get("allow_loopback_nodes", False),
        allow_private_nodes=policy.get("allow_private_nodes", False),
    )


@pytest.fixture
def discoveries(devnet: DevnetState, request: pytest.FixtureRequest) -> Iterator[Callable[..., str]]:
    """Starts discoveries with the given address policy, each on its own key prefix; all stop at the end."""
    with ExitStack() as stack:
        count = 0

        def start(prefix: str | None = None, **policy: bool) -> str:
            nonlocal count
            count += 1
            prefix = prefix or f"na{abs(hash(request.node.name)) % 10**8}x{count}"
            return stack.enter_context(
                serve_in_thread(create_discovery(discovery_settings(devnet, prefix, **policy)), port=free_port())
            )

        yield start


def record(node: LocalAccount, ip: str, port: int = 8091) -> dict[str, Any]:
    # Built as JSON, not as a NodeRecord: the attacker sends what it likes, the model is discovery's to apply.
    base = NodeRecord(node=node.address, provider=provider.address, ip="127.0.0.1", port=port, pool_id=0, specs=SPECS)
    return {**base.model_dump(mode="json"), "ip": ip}


async def put(url: str, node: LocalAccount, body: dict[str, Any]) -> httpx.Response:
    signer = RequestSigner(node, audience="discovery", chain_id=31337)
    async with httpx.AsyncClient(base_url=url, auth=signer, timeout=30) as http:
        return await http.put("/api/nodes", json=body)


async def stored(url: str, node: LocalAccount) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        return await http.get(f"/api/nodes/{node.address}", headers={"authorization": f"Bearer {ADMIN_TOKEN}"})


def error(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, str(response.json()["error"]["code"])


# What an attacker puts in `ip`, and what discovery must answer. "10.0.0.5/x?" used to also pick the path and query
# of every URL the validator and the orchestrator built; `010.0.0.1` and host names dodged the per-IP limit.
NOT_AN_IP = ["10.0.0.5/x?", "127.0.0.1:6379/", "localhost", "metadata.google.internal", "010.0.0.1", "0x7f.1"]
REFUSED_RANGES = {
    "127.0.0.1": "loopback",
    "::1": "loopback",
    "::ffff:127.0.0.1": "loopback",
    "2002:7f00:1::": "loopback",  # 6to4 of 127.0.0.1
    "169.254.169.254": "link_local",  # the cloud metadata service
    "fe80::1": "link_local",
    "10.0.0.5": "private",
    "192.168.1.1": "private",
    "fc00::1": "private",
    "224.0.0.1": "multicast",
    "240.0.0.1": "reserved",
    "0.0.0.0": "unspecified",
    "::": "unspecified",
}


async def test_discovery_refuses_each_address_a_miner_must_not_name(
    discoveries: Callable[..., str], new_node: NewNode
) -> None:
    strict = discoveries()
    node = await new_node()
    for ip in NOT_AN_IP:
        response = await put(strict, node, record(node, ip))
        assert error(response) == (422, "invalid_request"), (ip, response.text)
        assert "not an IP address" in response.json()["error"]["message"]
    for ip, reason in REFUSED_RANGES.items():
        response = await put(strict, node, record(node, ip))
        assert error(response) == (422, "address_refused"), (ip, response.text)
        assert response.json()["error"]["details"] == {"reason": reason}, ip
    assert error(await stored(strict, node)) == (404, "node_not_found"), "nothing refused may be stored"


async def test_the_devnet_setting_allows_loopback_and_nothing_else(
    discoveries: Callable[..., str], new_node: NewNode
) -> None:
    devnet_like = discoveries(allow_loopback_nodes=True)
    node = await new_node()
    for ip, reason in REFUSED_RANGES.items():
        response = await put(devnet_like, node, record(node, ip))
        if reason == "loopback":
            assert response.status_code == 200, (ip, response.text)
        else:
            assert error(response) == (422, "address_refused"), (ip, response.text)
    accepted = await put(devnet_like, node, record(node, "::ffff:127.0.0.9"))
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["node"]["ip"] == "127.0.0.9", "stored in its canonical form"


async def test_the_ip_limit_counts_the_address_not_its_spelling(
    discoveries: Callable[..., str], new_node: NewNode
) -> None:
    url = discoveries(allow_loopback_nodes=True, allow_private_nodes=True)
    first, second, third = [await new_node(join_pool=0) for _ in range(3)]
    assert (await put(url, first, record(first, "127.0.0.5"))).status_code == 200
    # Each of these used to be a new "IP" to the limit; they are the same address (or /64) as an active node's.
    assert error(await put(url, second, record(second, "::ffff:127.0.0.5"))) == (409, "ip_limit_reached")
    assert error(await put(url, second, record(second, "127.000.000.005"))) == (422, "invalid_request")
    assert (await put(url, second, record(second, "2001:db8:5:5::1"))).status_code == 200
    crowded = await put(url, third, record(third, "2001:db8:5:5:ffff::2"))
    assert error(crowded) == (409, "ip_limit_reached")
    assert "2001:db8:5:5::/64" in crowded.json()["error"]["message"]
    assert (await put(url, third, record(third, "2001:db8:5:6::1"))).status_code == 200


async def test_the_orchestrator_never_calls_a_refused_address() -> None:
    node = "0x" + "cd" * 20
    strict = MinerClient(manager, chain_id=31337, timeout_s=5, addresses=AddressPolicy())
    loopback = MinerClient(manager, chain_id=31337, timeout_s=5, addresses=AddressPolicy(allow_loopback=True))
    try:
        async with serving(answer({"result": "joined"})) as listener:
            with pytest.raises(PeerError) as refused:
                await strict.invite("127.0.0.1", listener.port, invite_for(node))
            assert refused.value.code == "address_refused"
            # A row from before this version, whose "ip" carries the listener's port and a path of its choosing.
            for ip in (f"127.0.0.1:{listener.port}/steal?", "localhost", "127.1"):
                with pytest.raises(PeerError) as injected:
                    await loopback.logs(ip, 1, node, 10)
                assert injected.value.code == "address_refused", ip
            assert listener.connections == 0, "a refused address must not be connected to"
            # The control: what the policy allows does reach the listener, so the zero above means something.
            assert await loopback.invite("127.0.0.1", listener.port, invite_for(node)) == {"result": "joined"}
            assert listener.connections == 1
            assert listener.requests[0].startswith(b"POST /invite HTTP/1.1")
    finally:
        await strict.aclose()
        await loopback.aclose()


async def test_the_validator_never_challenges_a_refused_address(
    devnet: DevnetState, discoveries: Callable[..., str], new_node: NewNode
) -> None:
    """A discovery more lenient than the validator (another operator's, or records kept from an older version): the
    validator's own policy still holds, in its real loop, and nothing is sent."""
    lenient = discoveries(allow_loopback_nodes=True)
    node = await new_node()
    async with serving(answer({})) as listener:
        assert (await put(lenient, node, record(node, "127.0.0.1", listener.port))).status_code == 200
        settings = ValidatorSettings(
            redis_url=devnet.redis_url,
            rpc_url=devnet.rpc_url,
            deployment_file=Path(devnet.deployment_file),
            discovery_url=lenient,
            challenge_n=8,
            feed_timeout_s=1.0,
            tick_s=0.1,
            retry_base_s=0.2,
            retry_max_s=1.0,
            key_prefix=f"vna{free_port()}",
            allow_loopback_nodes=False,
        )
        with pytest.raises(AddressRefusedError):
            ChallengeClient.from_settings(validator, settings, chain_id=31337).target_of(
                NodeRecord.model_validate(record(node, "127.0.0.1", listener.port))
            )
        redis = connect(devnet.redis_url)
        try:
            with serve_in_thread(create_validator(settings, validator), port=free_port()):
                store = ValidatorStore(redis, prefix=settings.key_prefix)

                async def refused() -> bool | None:
                    state = await store.state(node.address)
                    return True if state.failures >= 2 and state.last_reason == "address_refused" else None

                await until(refused, "the validator to refuse the node's address twice", timeout_s=60)
        finally:
            await redis.aclose()
        assert listener.connections == 0, "the validator connected to an address its policy refuses"


async def test_an_allowed_address_is_called_at_its_port_and_our_path_only() -> None:
    """The URL is built from its parts: the listener sees exactly the request line the client meant."""
    client = MinerClient(manager, chain_id=31337, timeout_s=5, addresses=AddressPolicy(allow_loopback=True))
    try:
        async with serving(answer({"task_id": None, "logs": ""})) as listener:
            await client.logs("127.0.0.1", listener.port, "0x" + "cd" * 20, 5)
            assert listener.requests[0].split(b"\r\n")[0] == b"GET /task/logs?tail=5 HTTP/1.1"
    finally:
        await client.aclose()


async def test_a_record_stored_by_an_older_version_does_not_break_the_others(
    devnet: DevnetState, discoveries: Callable[..., str], new_node: NewNode
) -> None:
    """A host name kept in Redis from before this version: readers skip it, discovery reads it as absent (no 5xx),
    and the node's next (valid) upload replaces it."""
    prefix = f"naold{free_port()}"
    url = discoveries(prefix=prefix, allow_loopback_nodes=True)
    kept, old = await new_node(), await new_node()
    for node in (kept, old):
        assert (await put(url, node, record(node, "127.0.0.1"))).status_code == 200
    redis = connect(devnet.redis_url)
    try:
        key = f"{prefix}:node:{old.address.lower()}"
        stale = record(old, "old-host.example")
        await redis.hset(key, "record", json.dumps(stale, separators=(",", ":")))
    finally:
        await redis.aclose()
    async with DiscoveryReader(url, validator, chain_id=31337) as reader:
        nodes, _ = await reader.listing()
        assert [listed.record.node for listed in nodes] == [kept.address.lower()]
        assert reader.skipped_records == 1
    assert error(await stored(url, old)) == (404, "node_not_found")
    again = await put(url, old, record(old, "127.0.0.1"))
    assert again.status_code == 200, again.text
    assert (await stored(url, old)).json()["ip"] == "127.0.0.1"
