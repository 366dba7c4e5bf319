"""Peers that stall or flood, against the orchestrator's and the validator's real client code.

The peers (`tests/hostile.py`) are real TCP servers on 127.0.0.1: one trickles a byte every 0.2 s (every read
succeeds, so a per-read timeout never fires and only a whole-call deadline ends the call), one streams a 1 GiB
body (only a cap on what is read stops it, and the cap must stop the reading, not just the keeping). The invite
round runs on the real devnet chain and Redis, with a slow miner and a quick one.
"""

from __future__ import annotations

import asyncio
import json
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from redis.asyncio import Redis

from hostile import Behaviour, Peer, answer, declared_flood, flood, invite_for, serving, trickle, trickle_body
from primenet.chain.contracts import Network
from primenet.core.discovery_client import DiscoveryReader
from primenet.core.models import ComputeSpecs, NodeRecord
from primenet.core.nodeaddr import AddressPolicy
from primenet.devnet.accounts import role_account
from primenet.devnet.local import DevnetState
from primenet.orchestrator.models import NodeStatus
from primenet.orchestrator.orchestrator import Orchestrator
from primenet.orchestrator.peers import MinerClient, PeerError
from primenet.orchestrator.settings import OrchestratorSettings
from primenet.orchestrator.store import OrchestratorStore
from primenet.validator.challenger import COMMITMENT_MAX_BYTES, ChallengeClient, Outcome, Target
from waiting import wait_for

NewNode = Callable[..., Awaitable[LocalAccount]]
manager = role_account("orchestrator")
validator = role_account("validator")
provider = role_account("provider")
NODE = "0x" + "cd" * 20
LOOPBACK = AddressPolicy(allow_loopback=True)
CAP = 1 << 20  # the reply cap these tests give the orchestrator's client
SPECS = ComputeSpecs(cpu_model="test cpu", cpu_cores=2, ram_mib=4096, storage_path="/tmp", storage_free_gb=10.0)
# However the kernel sizes loopback socket buffers, a cut-off reader lets through a few MB, never hundreds.
MOST_SENT = 64 << 20


async def settled(call: Awaitable[Any], limit_s: float) -> Any:
    """`call`'s outcome (its value or the exception it raised); a hang past `limit_s` fails the test instead of
    blocking it (the code before this fix hung here for minutes). A guard, not a measurement: the deadlines are
    shown by the errors the clients give and by what the peers managed to send."""
    try:
        return await asyncio.wait_for(call, limit_s)
    except TimeoutError:
        pytest.fail(f"the call was still running after {limit_s} s: no whole-call deadline")
    except Exception as exc:
        return exc


# --- the orchestrator's miner client -------------------------------------------------------------------------


@pytest.mark.parametrize("behaviour", [trickle, trickle_body], ids=["head", "body"])
async def test_a_trickling_miner_holds_an_orchestrator_call_only_until_its_deadline(behaviour: Behaviour) -> None:
    client = MinerClient(manager, chain_id=31337, timeout_s=1.5, addresses=LOOPBACK, max_reply_bytes=CAP)
    try:
        async with serving(behaviour) as peer:
            outcome = await settled(client.invite("127.0.0.1", peer.port, invite_for(NODE)), 20)
    finally:
        await client.aclose()
    assert isinstance(outcome, PeerError), outcome
    assert "no complete reply within 1.5 s" in str(outcome)
    assert behaviour is trickle or peer.sent < 1000, "the body was read to its end: no deadline cut it off"
    assert peer.connections == 1


@pytest.mark.parametrize("behaviour", [flood, declared_flood], ids=["streamed", "declared"])
async def test_a_flooding_miner_is_cut_off_at_the_reply_cap(behaviour: Behaviour) -> None:
    client = MinerClient(manager, chain_id=31337, timeout_s=30, addresses=LOOPBACK, max_reply_bytes=CAP)
    tracemalloc.start()
    try:
        async with serving(behaviour) as peer:
            tracemalloc.reset_peak()
            outcome = await settled(client.logs("127.0.0.1", peer.port, NODE, 10), 20)
            _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        await client.aclose()
    assert isinstance(outcome, PeerError), outcome
    assert f"than the {CAP} bytes accepted" in str(outcome)
    assert peer.sent < MOST_SENT, f"the peer wrote {peer.sent} bytes: reading went on past the cap"
    assert peak < 16 << 20, f"{peak} bytes allocated at the peak: the reply was held, not cut off"


async def test_a_compressed_reply_is_refused_not_inflated() -> None:
    async def gzip_reply(peer: Peer, writer: asyncio.StreamWriter, _: bytes) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: 10\r\n\r\n" + b"\x1f\x8b" * 5)
        await writer.drain()

    client = MinerClient(manager, chain_id=31337, timeout_s=5, addresses=LOOPBACK, max_reply_bytes=CAP)
    try:
        async with serving(gzip_reply) as peer:
            with pytest.raises(PeerError, match="gzip-encoded"):
                await client.logs("127.0.0.1", peer.port, NODE, 10)
            assert b"accept-encoding: identity" in peer.requests[0].lower()
    finally:
        await client.aclose()


# --- the validator's challenge client ------------------------------------------------------------------------


def challenge_client() -> ChallengeClient:
    return ChallengeClient(validator, chain_id=31337, n=8, deadline_s=1.0, reveal_deadline_s=1.0, connect_timeout_s=1)


def target(peer: Peer) -> Target:
    return Target(node=NODE, url=peer.url, claimed_gpu="cpu")


@pytest.mark.parametrize("behaviour", [trickle, trickle_body], ids=["head", "body"])
async def test_a_trickling_miner_is_a_late_answer_at_the_challenge_deadline(behaviour: Behaviour) -> None:
    async with serving(behaviour) as peer:
        result = await settled(challenge_client().run(target(peer)), 20)
    # Every single read succeeded within 0.2 s: only a whole-call deadline makes this a late answer.
    assert (result.outcome, result.reason) == (Outcome.REJECTED, "late_answer"), result
    assert behaviour is trickle or peer.sent < 1000, "the body was read to its end"


async def test_a_flooding_miner_is_malformed_and_cut_off_at_the_commitment_cap() -> None:
    async with serving(flood) as peer:
        result = await settled(challenge_client().run(target(peer)), 20)
    assert (result.outcome, result.reason) == (Outcome.REJECTED, "malformed"), result
    assert f"larger than the {COMMITMENT_MAX_BYTES} bytes" in result.detail
    assert peer.sent < MOST_SENT, f"the peer wrote {peer.sent} bytes"


async def test_an_opening_flood_is_cut_off_at_the_size_the_challenge_allows() -> None:
    """Round 1 answered properly, round 2 floods: the cap follows from n, the dtype and the rows asked for."""

    async def commit_then_flood(peer: Peer, writer: asyncio.StreamWriter, body: bytes) -> None:
        if peer.requests[-1].startswith(b"POST /challenge/commit "):
            challenge = json.loads(body)
            commitment = {
                "challenge_id": challenge["challenge_id"],
                "seed": challenge["seed"],
                "n": challenge["n"],
                "dtype": challenge["dtype"],
                "root": "00" * 32,
                "backend": "hostile",
                "timings": {"derive_s": 0, "matmul_s": 0, "commit_s": 0},
            }
            await answer(commitment)(peer, writer, body)
        else:
            await flood(peer, writer, body)

    async with serving(commit_then_flood) as peer:
        result = await settled(challenge_client().run(target(peer)), 20)
    assert [request.split(b" ")[1] for request in peer.requests] == [b"/challenge/commit", b"/challenge/open"]
    assert (result.outcome, result.reason) == (Outcome.REJECTED, "malformed"), result
    assert "/challenge/open" in result.detail
    assert "larger than" in result.detail
    assert peer.sent < MOST_SENT


# --- the invite round ----------------------------------------------------------------------------------------


async def test_a_slow_miner_delays_only_its_own_invite(
    devnet: DevnetState, network: Network, new_node: NewNode, redis_client: Redis
) -> None:
    settings = OrchestratorSettings(
        redis_url=devnet.redis_url,
        rpc_url=devnet.rpc_url,
        deployment_file=Path(devnet.deployment_file),
        miner_timeout_s=3.0,
        invite_retry_base_s=60.0,
        key_prefix="hostile",
    )
    store = OrchestratorStore(redis_client, prefix=settings.key_prefix)
    miners = MinerClient(manager, chain_id=31337, timeout_s=settings.miner_timeout_s, addresses=LOOPBACK)
    discovery = DiscoveryReader("http://127.0.0.1:9", manager, chain_id=31337)  # not read by the inviter
    orchestrator = Orchestrator(
        settings=settings, store=store, network=network, manager=manager, discovery=discovery, miners=miners
    )
    slow_node, quick_node = await new_node(validated=True), await new_node(validated=True)
    try:
        async with serving(trickle) as slow, serving(answer({"result": "joined"})) as quick:
            now = time.time()
            for node, peer in ((slow_node, slow), (quick_node, quick)):
                listed = NodeRecord(
                    node=node.address, provider=provider.address, ip="127.0.0.1", port=peer.port, pool_id=0, specs=SPECS
                )
                await store.upsert_listed(listed, listed_at=now, now=now)

            started = await settled(orchestrator.invite_round(), 20)  # the old round waited for every invite
            assert len(started) == 2
            assert not all(invite.done() for invite in started), "the round waited for the invites it started"

            async def quick_invited() -> bool:
                row = await store.node(quick_node.address.lower())
                return row is not None and row.status is NodeStatus.WAITING

            await wait_for(quick_invited, "the quick miner invited", timeout_s=2.5)  # before the slow one's deadline
            assert slow_node.address.lower() in orchestrator.inviting, "the slow invite is still in flight"
            assert await orchestrator.invite_round() == [], "a node with an invite in flight is not invited again"
            await asyncio.wait_for(asyncio.gather(*started), 10)
            row = await store.node(slow_node.address.lower())
            assert row is not None
            assert (row.status, row.invite_failures) == (NodeStatus.DISCOVERED, 1)
            assert row.next_invite_at > time.time() + 30, "the slow miner backs off; the round goes on without it"
            assert (slow.connections, quick.connections) == (1, 1)
    finally:
        await miners.aclose()
        await discovery.aclose()
