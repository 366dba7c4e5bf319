"""The validator against the real devnet chain, Redis, discovery, uvicorn and the real miner API.

Honest answers come from the real miner (`primenet.miner.app.create_app`). The cheating miners are
`CheatingPeer`: a small app that serves the miner's two challenge routes with our real solver
(`solve_round1`/`solve_round2`) and then tampers with what it computed. It is the adversary under test, not a
stand-in for the miner service.
"""

# No `from __future__ import annotations`: the peer's route dependency is a local object FastAPI must see as a value.
import asyncio
import enum
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import numpy as np
import pytest
import redis
import structlog
import structlog.testing
from eth_account import Account
from eth_account.signers.local import LocalAccount
from fastapi import Depends, FastAPI
from typer.testing import CliRunner

from primenet.chain.contracts import Network
from primenet.cli.validator import validator_app
from primenet.core.auth import RequestAuthenticator, RequestSigner, Signer
from primenet.core.challenge.wire import Challenge, Commitment, Matrix, MatrixDtype, Opening, Reveal, Vector
from primenet.core.models import ComputeSpecs, NodeRecord
from primenet.core.redisdb import connect
from primenet.devnet.accounts import role_account
from primenet.devnet.local import DevnetState
from primenet.devnet.processes import free_port
from primenet.devnet.serve import serve_in_thread
from primenet.discovery.app import create_app as create_discovery
from primenet.discovery.settings import DiscoverySettings
from primenet.miner.app import create_app as create_miner
from primenet.miner.settings import MinerKeys, MinerSettings
from primenet.miner.solver import Backend, CommittedProduct, numpy_matmul, solve_round1, solve_round2
from primenet.validator.app import create_app as create_validator
from primenet.validator.challenger import ChallengeClient, ChallengeResult, Outcome, Target
from primenet.validator.settings import ValidatorSettings
from primenet.validator.store import RedisLedger, ValidatorStore
from waiting import wait_for

NewNode = Callable[..., Awaitable[LocalAccount]]
N = 128
ADMIN_TOKEN = "validator-admin-token-0123456789"
SPECS = ComputeSpecs(cpu_model="test cpu", cpu_cores=2, ram_mib=4096, storage_path="/tmp", storage_free_gb=10.0)
validator = role_account("validator")
provider = role_account("provider")


class Cheat(enum.StrEnum):
    HONEST = "honest"
    WRONG_PRODUCT = "wrong_product"  # one element of C is off; the rest of the protocol is followed
    OTHER_SEED = "other_seed"  # a correct product for another seed, claiming this seed
    OTHER_SEED_ECHOED = "other_seed_echoed"  # the same, echoing the seed it really used
    BAD_ROW = "bad_row"  # an opened row differs from the committed one
    BAD_CR = "bad_cr"  # C.r does not match the committed rows
    SLOW = "slow"  # answers round 1 after `delay_s`
    REPLAY = "replay"  # answers every challenge with its first answer


class CheatingPeer:
    """The adversary: our real solver, then a tampering step (see the module docstring)."""

    def __init__(self, node: str, cheat: Cheat, delay_s: float = 0.0) -> None:
        self.node, self.cheat, self.delay_s = node.lower(), cheat, delay_s
        self.states: dict[str, CommittedProduct] = {}
        self.commitments: dict[str, Commitment] = {}
        self.recorded: list[tuple[Commitment, Opening]] = []
        self.answered = 0

    def app(self) -> FastAPI:
        app = FastAPI()
        auth = RequestAuthenticator(redis=None, audience=self.node, chain_id=31337)  # the miner's in-memory nonces

        @app.post("/challenge/commit")
        async def commit(challenge: Challenge, signer: Annotated[Signer, Depends(auth)]) -> Commitment:
            assert signer.address == validator.address.lower()
            if self.cheat is Cheat.SLOW:
                await asyncio.sleep(self.delay_s)
            if self.cheat is Cheat.REPLAY and self.recorded:
                return self.recorded[0][0]
            return self.round1(challenge)

        @app.post("/challenge/open")
        async def open_(reveal: Reveal, _: Annotated[Signer, Depends(auth)]) -> Opening:
            self.answered += 1
            if self.cheat is Cheat.REPLAY and self.recorded:
                return self.recorded[0][1]
            state = self.states.pop(reveal.challenge_id)
            opening = self.tamper_opening(solve_round2(state, reveal), state.challenge.n, state.challenge.dtype)
            if self.cheat is Cheat.REPLAY:
                self.recorded.append((self.commitments[reveal.challenge_id], opening))
            return opening

        return app

    def round1(self, challenge: Challenge) -> Commitment:
        backend = Backend("numpy", numpy_matmul)
        solved = challenge
        if self.cheat is Cheat.WRONG_PRODUCT:
            backend = Backend("numpy", wrong_matmul)
        if self.cheat in (Cheat.OTHER_SEED, Cheat.OTHER_SEED_ECHOED):
            solved = challenge.model_copy(update={"seed": "ee" * 32})
        commitment, state = solve_round1(solved, backend)
        if self.cheat is Cheat.OTHER_SEED:
            commitment = commitment.model_copy(update={"seed": challenge.seed})
        self.states[challenge.challenge_id] = state
        self.commitments[challenge.challenge_id] = commitment
        return commitment

    def tamper_opening(self, opening: Opening, n: int, dtype: MatrixDtype) -> Opening:
        if self.cheat is Cheat.BAD_ROW:
            first = opening.rows[0]
            values = first.values.decode(n).copy()
            values[0] += 1.0
            rows = [first.model_copy(update={"values": Vector.of(values, dtype)}), *opening.rows[1:]]
            return opening.model_copy(update={"rows": rows})
        if self.cheat is Cheat.BAD_CR:
            y = opening.cr.decode(n).copy()
            y[opening.rows[0].index] += 1.0
            return opening.model_copy(update={"cr": Vector.of(y, MatrixDtype.FLOAT64)})
        return opening


def wrong_matmul(a: Matrix, b: Matrix, dtype: MatrixDtype) -> Matrix:
    c = numpy_matmul(a, b, dtype)
    c[3, 5] += np.float32(1.0)
    return c


@pytest.fixture
def serve() -> Iterator[Callable[[FastAPI], str]]:
    """Serve apps on real uvicorn servers for the length of the test."""
    stack: list[Any] = []

    def start(app: FastAPI) -> str:
        context = serve_in_thread(app, port=free_port())
        stack.append(context)
        return context.__enter__()

    yield start
    for context in reversed(stack):
        context.__exit__(None, None, None)


def challenge_client(account: LocalAccount = validator, **changes: Any) -> ChallengeClient:
    options: dict[str, Any] = {"chain_id": 31337, "n": N, "deadline_s": 10.0, "reveal_deadline_s": 10.0, **changes}
    return ChallengeClient(account, **options)


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def miner_app(devnet: DevnetState, node: LocalAccount, tmp_path: Path, discovery_url: str) -> FastAPI:
    """The real miner's API (its port setting is unused: `serve` picks the port)."""
    settings = MinerSettings(
        host="127.0.0.1",
        rpc_url=devnet.rpc_url,
        deployment_file=Path(devnet.deployment_file),
        discovery_url=discovery_url,
        pool_id=0,
        storage_path=tmp_path / "storage",
        state_dir=tmp_path / "state",
        discovery_check_interval_s=3600,
        role_cache_s=1,
        challenge_backend="numpy",
    )
    return create_miner(settings, MinerKeys(provider=provider, node=node), SPECS)


# --- the client against one miner --------------------------------------------------------------------


async def test_the_real_miner_passes_and_figures_come_back(
    devnet: DevnetState, tmp_path: Path, serve: Callable[[FastAPI], str]
) -> None:
    node = Account.create()
    url = serve(miner_app(devnet, node, tmp_path, "http://127.0.0.1:9"))
    result = await challenge_client().run(Target(node=node.address, url=url, claimed_gpu="cpu"))
    assert (result.outcome, result.reason) == (Outcome.ACCEPTED, "ok"), result.detail
    assert result.backend == "numpy"
    assert result.figures["n"] == N
    assert 0 < result.figures["elapsed_s"] < result.figures["expected_s"]
    assert {"freivalds_ratio", "row_ratio", "cr_ratio", "projection_ratio"} <= set(result.figures)


@pytest.mark.parametrize(
    ("cheat", "reason"),
    [
        (Cheat.WRONG_PRODUCT, "wrong_product"),
        (Cheat.OTHER_SEED, "wrong_product"),
        (Cheat.OTHER_SEED_ECHOED, "wrong_seed"),
        (Cheat.BAD_ROW, "commitment_mismatch"),
        (Cheat.BAD_CR, "cr_mismatch"),
    ],
)
async def test_a_cheating_miner_is_rejected_with_its_reason(
    cheat: Cheat, reason: str, serve: Callable[[FastAPI], str]
) -> None:
    node = Account.create()
    url = serve(CheatingPeer(node.address, cheat).app())
    result = await challenge_client().run(Target(node=node.address, url=url, claimed_gpu="cpu"))
    assert (result.outcome, result.reason) == (Outcome.REJECTED, reason), result.detail


@pytest.mark.parametrize("delay_s", [1.4, 3.0], ids=["arrives-late", "times-out"])
async def test_a_late_answer_is_rejected(delay_s: float, serve: Callable[[FastAPI], str]) -> None:
    """Past the deadline but before the read timeout, verify judges it; past the timeout, the client does."""
    node = Account.create()
    url = serve(CheatingPeer(node.address, Cheat.SLOW, delay_s=delay_s).app())
    result = await challenge_client(deadline_s=1.0).run(Target(node=node.address, url=url, claimed_gpu="cpu"))
    assert (result.outcome, result.reason) == (Outcome.REJECTED, "late_answer"), result.detail
    assert result.figures["elapsed_s"] > 1.0


async def test_a_replayed_answer_is_rejected(serve: Callable[[FastAPI], str], redis_url: str) -> None:
    node = Account.create()
    peer = CheatingPeer(node.address, Cheat.REPLAY)
    url = serve(peer.app())
    client = challenge_client(ledger=RedisLedger(_sync_redis(redis_url), prefix="valtest"))
    target = Target(node=node.address, url=url, claimed_gpu="cpu")
    first = await client.run(target)
    assert first.outcome is Outcome.ACCEPTED, first.detail
    second = await client.run(target)
    assert (second.outcome, second.reason) == (Outcome.REJECTED, "replayed_answer"), second.detail


async def test_the_ledger_claims_a_challenge_id_once(redis_url: str) -> None:
    ledger = RedisLedger(_sync_redis(redis_url), prefix="valtest")
    challenge_id = "ab" * 32
    assert ledger.claim(challenge_id, time.time() + 30)
    assert not ledger.claim(challenge_id, time.time() + 30)
    ttl = ledger.client.ttl(f"valtest:ledger:{challenge_id}")
    assert isinstance(ttl, int)
    assert 0 < ttl <= 30


async def test_an_unknown_gpu_claim_is_rejected(serve: Callable[[FastAPI], str]) -> None:
    node = Account.create()
    url = serve(CheatingPeer(node.address, Cheat.HONEST).app())
    result = await challenge_client().run(Target(node=node.address, url=url, claimed_gpu="Potato 9000"))
    assert (result.outcome, result.reason) == (Outcome.REJECTED, "unknown_gpu")


async def test_could_not_run_is_not_a_verdict(
    devnet: DevnetState, tmp_path: Path, serve: Callable[[FastAPI], str]
) -> None:
    node = Account.create()
    nobody = f"http://127.0.0.1:{free_port()}"
    unreachable = await challenge_client().run(Target(node=node.address, url=nobody, claimed_gpu="cpu"))
    assert (unreachable.outcome, unreachable.reason) == (Outcome.FAILED, "unreachable")
    # The real miner refuses a signer without VALIDATOR_ROLE, and a request signed for another audience.
    url = serve(miner_app(devnet, node, tmp_path, "http://127.0.0.1:9"))
    target = Target(node=node.address, url=url, claimed_gpu="cpu")
    outsider = await challenge_client(Account.create()).run(target)
    assert (outsider.outcome, outsider.reason) == (Outcome.FAILED, "refused")
    assert "signer_unauthorized" in outsider.detail
    misaddressed = await challenge_client(audience="someone-else").run(target)
    assert (misaddressed.outcome, misaddressed.reason) == (Outcome.FAILED, "refused")
    assert "audience_mismatch" in misaddressed.detail


def test_cli_challenges_one_node_by_url(
    devnet: DevnetState, tmp_path: Path, serve: Callable[[FastAPI], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    node = Account.create()
    honest = serve(miner_app(devnet, node, tmp_path, "http://127.0.0.1:9"))
    cheat = serve(CheatingPeer(node.address, Cheat.BAD_CR).app())
    monkeypatch.setenv("PRIMENET_VALIDATOR_KEY", validator.key.hex())
    monkeypatch.setenv("PRIMENET_DEPLOYMENT_FILE", devnet.deployment_file)
    runner = CliRunner()
    # The miner serves in this process: its log lines (structlog unconfigured prints them) must not mix with the
    # CLI's JSON on the captured stdout.
    with structlog.testing.capture_logs() as miner_logs:
        passed = runner.invoke(validator_app, ["challenge", node.address, "--url", honest, "-n", "128", "--json"])
    assert passed.exit_code == 0, passed.output
    assert [e["n"] for e in miner_logs if e["event"] == "challenge received"] == [128]
    assert ChallengeResult.model_validate_json(passed.stdout).reason == "ok"
    rejected = runner.invoke(validator_app, ["challenge", node.address, "--url", cheat, "-n", "128"])
    assert rejected.exit_code == 1, rejected.output
    assert "cr_mismatch" in rejected.stdout
    nobody = runner.invoke(validator_app, ["challenge", node.address, "--url", f"http://127.0.0.1:{free_port()}"])
    assert nobody.exit_code == 2, nobody.output
    assert "unreachable" in nobody.stdout


# --- the loop, end to end ----------------------------------------------------------------------------


def discovery_settings(devnet: DevnetState, prefix: str) -> DiscoverySettings:
    return DiscoverySettings(
        redis_url=devnet.redis_url,
        rpc_url=devnet.rpc_url,
        chain_id=devnet.chain_id,
        deployment_file=Path(devnet.deployment_file),
        sync_interval_s=0.2,
        role_cache_s=0.5,
        key_prefix=prefix,
    )


def validator_settings(devnet: DevnetState, discovery_url: str, prefix: str, **changes: Any) -> ValidatorSettings:
    fields: dict[str, Any] = {
        "feed_timeout_s": 1.0,
        "tick_s": 0.1,
        "retry_base_s": 0.2,
        "retry_max_s": 1.0,
        **changes,
    }
    return ValidatorSettings(
        redis_url=devnet.redis_url,
        rpc_url=devnet.rpc_url,
        deployment_file=Path(devnet.deployment_file),
        discovery_url=discovery_url,
        admin_token=ADMIN_TOKEN,
        challenge_n=N,
        key_prefix=prefix,
        **fields,
    )


async def upload(discovery_url: str, node: LocalAccount, port: int) -> None:
    record = NodeRecord(node=node.address, provider=provider.address, ip="127.0.0.1", port=port, pool_id=0, specs=SPECS)
    signer = RequestSigner(node, audience="discovery", chain_id=31337)
    async with httpx.AsyncClient(base_url=discovery_url, auth=signer, timeout=30) as http:
        response = await http.put("/api/nodes", json=record.model_dump(mode="json"))
    assert response.status_code == 200, response.text


async def test_an_honest_miner_is_validated_on_chain_from_the_feed(
    devnet: DevnetState, network: Network, new_node: NewNode, tmp_path: Path, serve: Callable[[FastAPI], str]
) -> None:
    discovery_url = serve(create_discovery(discovery_settings(devnet, "dval1")))
    validator_url = serve(create_validator(validator_settings(devnet, discovery_url, "val1"), validator))
    node = await new_node()
    miner_url = serve(miner_app(devnet, node, tmp_path, discovery_url))

    async def listed() -> bool:
        async with httpx.AsyncClient(base_url=validator_url) as http:
            return (await http.get("/health")).json()["last_resync_at"] is not None

    await wait_for(listed, "the validator's first listing")
    # Uploaded after the validator listed (and the next listing is minutes away): it learns of it from the feed.
    await upload(discovery_url, node, port_of(miner_url))

    async def validated() -> bool:
        info = await network.node(node.address)
        return info is not None and info.is_validated

    await wait_for(validated, "the node to be validated on chain")

    async def counted() -> bool:  # the loop counts the validation once its receipt is back, after the chain shows it
        async with httpx.AsyncClient(base_url=validator_url) as http:
            return (await http.get("/health")).json()["counts"].get("validations", 0) >= 1

    await wait_for(counted, "the validator to count its validation")
    async with httpx.AsyncClient(base_url=validator_url) as http:
        health = (await http.get("/health")).json()
        metrics = (await http.get("/metrics/")).text
    assert health["status"] == "ok"
    assert health["counts"]["accepted"] >= 1
    assert health["feed_cursor"]
    assert 'primenet_validator_challenges_total{outcome="accepted",reason="ok"}' in metrics
    assert 'primenet_validator_validations_total{result="sent"}' in metrics
    assert "primenet_validator_queue_size" in metrics


async def test_repeated_rejections_invalidate_the_node_on_chain(
    devnet: DevnetState, network: Network, new_node: NewNode, serve: Callable[[FastAPI], str]
) -> None:
    node = await new_node()
    start = await network.w3.eth.block_number
    discovery_url = serve(create_discovery(discovery_settings(devnet, "dval2")))
    peer = CheatingPeer(node.address, Cheat.WRONG_PRODUCT)
    peer_url = serve(peer.app())
    await upload(discovery_url, node, port_of(peer_url))
    settings = validator_settings(devnet, discovery_url, "val2", max_attempts=2, failure_action="invalidate")
    validator_url = serve(create_validator(settings, validator))

    async def invalidated() -> bool:
        logs = await network.prime.events.ComputeNodeInvalidated().get_logs(from_block=start)
        return any(str(entry["args"]["node"]).lower() == node.address.lower() for entry in logs)

    await wait_for(invalidated, "invalidateNode for the cheating node")
    assert peer.answered == 2  # given up after max_attempts, not challenged again
    info = await network.node(node.address)
    assert info is not None
    assert not info.is_validated
    store_redis = connect(devnet.redis_url)
    try:
        state = await ValidatorStore(store_redis, prefix="val2").state(node.address)
    finally:
        await store_redis.aclose()
    assert (state.given_up, state.rejections, state.last_reason) == (True, 2, "wrong_product")
    async with httpx.AsyncClient(base_url=validator_url) as http:
        anonymous = await http.get("/rejections")
        wrong = await http.get("/rejections", headers={"Authorization": "Bearer not-the-token-at-all"})
        listed = await http.get("/rejections", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert anonymous.status_code == 401
    assert wrong.status_code == 401
    assert listed.status_code == 200
    mine = [r for r in listed.json()["rejections"] if r["node"] == node.address.lower()]
    assert [r["reason"] for r in mine] == ["wrong_product", "wrong_product"]
    assert mine[0]["figures"]["freivalds_ratio"] > 1


def _sync_redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(url)


async def test_a_miner_not_serving_yet_is_challenged_again_as_soon_as_it_serves(
    devnet: DevnetState, network: Network, new_node: NewNode, tmp_path: Path, serve: Callable[[FastAPI], str]
) -> None:
    """Issue 16: the validator met a node whose API was not listening yet, failed `unreachable` and waited its
    whole backoff. An unreachable node is retried after `retry_unreachable_base_s` (doubling), whatever the long
    base of other failures, and the dispatcher wakes for it however long its tick: here both are far beyond the
    wait below, so only the short schedule can validate the node in time."""
    discovery_url = serve(create_discovery(discovery_settings(devnet, "dval_late")))
    settings = validator_settings(
        devnet, discovery_url, "val_late", retry_base_s=3600.0, retry_max_s=3600.0, tick_s=3600.0
    )
    validator_url = serve(create_validator(settings, validator))
    node = await new_node()
    port = free_port()
    await upload(discovery_url, node, port)  # published, but nothing listens on its port yet

    async def failed_unreachable() -> bool:
        async with httpx.AsyncClient(base_url=validator_url) as http:
            return (await http.get("/health")).json()["counts"].get("failed", 0) >= 1

    await wait_for(failed_unreachable, "the first challenge to fail: the miner does not serve yet")
    info = await network.node(node.address)
    assert info is not None
    assert not info.is_validated
    with serve_in_thread(miner_app(devnet, node, tmp_path, discovery_url), port=port):

        async def validated() -> bool:
            info = await network.node(node.address)
            return info is not None and info.is_validated

        await wait_for(validated, "the node validated once its miner serves", timeout_s=30.0)
