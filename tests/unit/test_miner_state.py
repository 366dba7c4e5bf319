"""The miner's pieces that need no server: state file, in-memory request admission, challenge book, wire models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from eth_account import Account
from pydantic import ValidationError

from primenet.core.auth import AuthPolicy, RequestAuthenticator, allow_addresses, orchestrator_audience
from primenet.core.challenge.wire import Challenge
from primenet.core.errors import ApiError
from primenet.core.models import ComputeSpecs, InviteRequest, NodeRecord, TaskSpec
from primenet.core.replies import ReplyVerifier
from primenet.miner.challenge_book import ChallengeBook
from primenet.miner.heartbeat import HeartbeatLoop
from primenet.miner.publisher import _comparable
from primenet.miner.registration import tokens
from primenet.miner.runner import DockerRunner
from primenet.miner.solver import NUMPY_BACKEND, solve_round1
from primenet.miner.state import MinerMemory, PersistedState, StateFile

NODE = "0x" + "ab" * 20


def test_state_file_is_0600_atomic_and_round_trips(tmp_path: Path) -> None:
    file = StateFile(tmp_path / "state" / "miner-state.json", NODE)
    assert file.load() == PersistedState(node=NODE)
    spec = TaskSpec(task_id="t1", image="busybox")
    file.save(PersistedState(pool_id=3, orchestrator_url="http://o:8090", assignment=spec))
    assert (file.path.stat().st_mode & 0o777) == 0o600
    assert file.load().assignment == spec
    assert [p.name for p in file.path.parent.iterdir()] == ["miner-state.json"]  # no temporary left behind


def test_state_of_another_node_or_garbage_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "miner-state.json"
    StateFile(path, "0x" + "cd" * 20).save(PersistedState(pool_id=1, orchestrator_url="http://o"))
    assert StateFile(path, NODE).load().orchestrator_url is None
    path.write_text("{not json")
    assert StateFile(path, NODE).load() == PersistedState(node=NODE)


def test_state_file_fixes_a_leftover_temporary_with_loose_mode(tmp_path: Path) -> None:
    file = StateFile(tmp_path / "miner-state.json", NODE)
    leftover = tmp_path / f".miner-state.json.{os.getpid()}.tmp"
    leftover.write_text("old")
    leftover.chmod(0o644)
    file.save(PersistedState(pool_id=0))
    assert (file.path.stat().st_mode & 0o777) == 0o600


async def test_local_admission_refuses_replays_and_floods() -> None:
    now = [1000.0]
    auth = RequestAuthenticator(
        redis=None, audience=NODE, chain_id=1, policy=AuthPolicy(rate_limit=3), clock=lambda: now[0]
    )
    await auth._admit_once("0x1", "n" * 16)
    with pytest.raises(ApiError) as replay:
        await auth._admit_once("0x1", "n" * 16)
    assert replay.value.code == "nonce_replayed"
    await auth._admit_once("0x1", "m" * 16)
    with pytest.raises(ApiError) as flood:
        await auth._admit_once("0x1", "o" * 16)
    assert flood.value.code == "rate_limited"
    now[0] += 120  # next window, and the first nonce has expired with its timestamp window
    await auth._admit_once("0x1", "n" * 16)


def _challenge(index: int) -> Challenge:
    return Challenge(challenge_id=f"{index:064x}", seed="11" * 32, n=8, issued_at=0, deadline_s=60)


def test_challenge_book_is_single_use_bounded_and_expiring() -> None:
    book = ChallengeBook(capacity=2, ttl_s=60)
    states = {}
    for index in range(3):
        challenge = _challenge(index)
        book.reserve(challenge.challenge_id)
        states[index] = solve_round1(challenge, NUMPY_BACKEND)[1]
        book.store(challenge.challenge_id, states[index])
    with pytest.raises(ApiError, match="challenge_not_found"):
        book.take(_challenge(0).challenge_id)  # the oldest was dropped for the third
    with pytest.raises(ApiError, match="challenge_exists"):
        book.reserve(_challenge(1).challenge_id)
    assert book.take(_challenge(1).challenge_id) is states[1]
    with pytest.raises(ApiError, match="challenge_not_found"):
        book.take(_challenge(1).challenge_id)
    expired = ChallengeBook(capacity=2, ttl_s=0)
    expired.reserve(_challenge(5).challenge_id)
    expired.store(_challenge(5).challenge_id, states[2])
    with pytest.raises(ApiError, match="challenge_not_found"):
        expired.take(_challenge(5).challenge_id)


def test_invite_request_validates_its_fields() -> None:
    fields = {
        "domain_id": 0,
        "pool_id": 0,
        "node": "0x" + "AB" * 20,
        "nonce": 1,
        "expiry": 2,
        "signature": "0x" + "00" * 65,
        "orchestrator_url": "http://orch:8090/",
    }
    invite = InviteRequest.model_validate(fields)
    assert invite.node == NODE
    assert invite.orchestrator_url == "http://orch:8090"
    for bad in ({"signature": "0x1234"}, {"orchestrator_url": "file:///etc"}, {"pool_id": -1}, {"extra": 1}):
        with pytest.raises(ValidationError):
            InviteRequest.model_validate({**fields, **bad})


def test_free_disk_moves_do_not_count_as_a_changed_record() -> None:
    def record(free: float, ip: str = "10.0.0.1") -> NodeRecord:
        return NodeRecord(node=NODE, provider=NODE, ip=ip, port=1, pool_id=0, specs=ComputeSpecs(storage_free_gb=free))

    assert _comparable(record(100.2)) == _comparable(record(100.9))
    assert _comparable(record(100.2)) != _comparable(record(101.2))
    assert _comparable(record(100.2)) != _comparable(record(100.2, ip="10.0.0.2"))


def test_tokens_prints_decimal_amounts() -> None:
    assert tokens(15 * 10**17) == "1.5"
    assert tokens(3 * 10**18) == "3"
    assert tokens(0) == "0"


def test_heartbeats_are_signed_for_the_orchestrator_of_the_joined_pool(tmp_path: Path) -> None:
    node = Account.create()
    memory = MinerMemory(StateFile(tmp_path / "miner-state.json", node.address))
    pools = "0x" + "cd" * 20
    loop = HeartbeatLoop(
        node=node,
        chain_id=1,
        audience_of=lambda pool_id: orchestrator_audience(pools, pool_id),
        runner=DockerRunner(node=node.address, storage_path=tmp_path, client=object()),
        memory=memory,
        replies=ReplyVerifier(allow_addresses([])),
    )
    with pytest.raises(RuntimeError, match="no pool"):
        loop.audience()  # an endpoint without a pool names no audience: nothing is sent
    memory.update(pool_id=3, orchestrator_url="http://127.0.0.1:9")
    audience = loop.audience()
    assert audience == orchestrator_audience(pools, 3) == f"orchestrator:3:{pools}"
    assert audience != orchestrator_audience(pools, 4)
    assert orchestrator_audience(pools.upper().replace("0X", "0x"), 3) == audience  # address case ignored
