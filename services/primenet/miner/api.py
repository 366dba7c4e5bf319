"""The miner's HTTP API. Every route but /health and /metrics is a signed request addressed to this node:
audience = the node's address in lower case, so a request signed for one miner cannot be replayed on another.

    POST /invite             pool creator or compute manager (read from chain)   join the pool, start heartbeats
    GET  /task/logs?tail=N   pool creator or compute manager                    the task container's last lines
    POST /task/restart       pool creator or compute manager                    restart the task container
    POST /heartbeat/now      pool creator or compute manager                    beat now (the assignment changed)
    POST /challenge/commit   VALIDATOR_ROLE holder (on chain, cached)           round 1: Challenge -> Commitment
    POST /challenge/open     VALIDATOR_ROLE holder                              round 2: Reveal -> Opening
    GET  /health, GET /metrics
"""

# No `from __future__ import annotations`: FastAPI must see the routes' dependency objects as values.
import asyncio
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Annotated, Any

import aiohttp
import httpx
from docker.errors import DockerException
from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse

from primenet.chain.eip712 import PoolInvite
from primenet.chain.errors import ChainError, ContractRevertError
from primenet.core.auth import RequestAuthenticator, Signer, cached
from primenet.core.challenge.wire import Challenge, ChallengeError, Commitment, Opening, Reveal
from primenet.core.errors import ApiError, error_response
from primenet.core.models import InviteRequest
from primenet.miner.runner import NoTaskContainerError, TaskStatus
from primenet.miner.solver import Backend, MinerState, solve_round1, solve_round2

if TYPE_CHECKING:
    from primenet.miner.service import Miner

MAX_LOG_LINES = 10_000


class ChallengeBook:
    """Round-1 products waiting for their reveal: bounded (each holds an n x n matrix) and expiring."""

    def __init__(self, *, capacity: int, ttl_s: float) -> None:
        self.capacity = capacity
        self.ttl_s = ttl_s
        self._entries: OrderedDict[str, tuple[float, MinerState | None]] = OrderedDict()
        self.compute = asyncio.Semaphore(1)  # one matmul at a time: two would share the GPU and double the memory

    def reserve(self, challenge_id: str) -> None:
        self._expire()
        if challenge_id in self._entries:
            raise ApiError(409, "challenge_exists", "this challenge id was already answered")
        while len(self._entries) >= self.capacity:
            self._entries.popitem(last=False)  # the oldest challenge loses: its validator waited longest
        self._entries[challenge_id] = (time.monotonic() + self.ttl_s, None)

    def store(self, challenge_id: str, state: MinerState) -> None:
        if challenge_id in self._entries:
            self._entries[challenge_id] = (time.monotonic() + self.ttl_s, state)

    def release(self, challenge_id: str) -> None:
        self._entries.pop(challenge_id, None)

    def take(self, challenge_id: str) -> MinerState:
        self._expire()
        entry = self._entries.get(challenge_id)
        if entry is None or entry[1] is None:
            raise ApiError(404, "challenge_not_found", "no committed challenge with this id (unknown, expired or used)")
        del self._entries[challenge_id]  # single use: a second reveal for the same product is refused
        return entry[1]

    def _expire(self) -> None:
        now = time.monotonic()
        for key in [key for key, (expires, _) in self._entries.items() if expires <= now]:
            del self._entries[key]


def add_routes(app: FastAPI, miner: "Miner", backend: Backend) -> None:
    settings = miner.settings
    network = miner.network
    chain_id = network.chain_id
    book = ChallengeBook(capacity=settings.max_pending_challenges, ttl_s=settings.challenge_state_ttl_s)

    async def pool_owners() -> frozenset[str]:
        pool = await network.pool(settings.pool_id)
        return frozenset({pool.creator.lower(), pool.compute_manager.lower()})

    async def is_pool_owner(address: str) -> bool:
        return address in await pool_owners()

    common: dict[str, Any] = {"audience": miner.node, "chain_id": chain_id, "policy": settings.auth}
    anyone = RequestAuthenticator(redis=None, **common)
    is_validator = cached(network.is_validator, settings.role_cache_s)
    validators = RequestAuthenticator(redis=None, **common, authorize=is_validator)
    owner_cache = cached(is_pool_owner, settings.role_cache_s)

    async def pool_owner(signer: Annotated[Signer, Depends(anyone)]) -> Signer:
        if not await owner_cache(signer.address):
            raise ApiError(
                403, "not_pool_owner", f"{signer.address} is neither creator nor manager of pool {settings.pool_id}"
            )
        return signer

    async def on_chain_down(_: Request, exc: Exception) -> JSONResponse:
        return error_response(
            ApiError(503, "chain_unavailable", f"the chain RPC is unreachable ({type(exc).__name__}); retry shortly")
        )

    async def on_docker_down(_: Request, exc: Exception) -> JSONResponse:
        return error_response(ApiError(503, "docker_unavailable", f"the Docker engine failed: {exc}"))

    for error in (aiohttp.ClientError, httpx.HTTPError, asyncio.TimeoutError, ChainError):
        app.add_exception_handler(error, on_chain_down)
    app.add_exception_handler(DockerException, on_docker_down)

    # --- invite --------------------------------------------------------------------------------------

    @app.post("/invite", tags=["pool"])
    async def invite(body: InviteRequest, signer: Annotated[Signer, Depends(pool_owner)]) -> dict[str, Any]:
        """Join the pool on chain with the manager's signed invite, then heartbeat to `orchestrator_url`."""
        if body.node != miner.node:
            raise ApiError(422, "invite_wrong_node", f"the invite is for node {body.node}, this is {miner.node}")
        if body.pool_id != settings.pool_id:
            raise ApiError(
                422,
                "invite_pool_mismatch",
                f"the invite is for pool {body.pool_id}; this node serves {settings.pool_id}",
            )
        if body.expiry < await network.chain_time():  # the chain's clock decides, not this host's
            raise ApiError(422, "invite_expired", f"the invite expired at {body.expiry} (chain time)")
        async with miner.join_lock:
            current = await network.node_pool(miner.node)
            if current == body.pool_id:
                result, tx = "already_in_pool", None
            elif current is not None:
                raise ApiError(409, "node_in_other_pool", f"the node is in pool {current}; it must leave it first")
            else:
                tx = await join(body)
                result = "joined"
            miner.memory.update(pool_id=body.pool_id, orchestrator_url=body.orchestrator_url)
        miner.heartbeat.wake()
        return {"result": result, "pool_id": body.pool_id, "orchestrator_url": body.orchestrator_url, "tx": tx}

    async def join(body: InviteRequest) -> str:
        node = await network.node(miner.node)
        if node is None:
            raise ApiError(409, "node_not_registered", "the node is not in the compute registry")
        if not node.is_validated:
            raise ApiError(409, "node_not_validated", "the node is not validated yet; invite it after validation")
        if await network.invite_nonce_used(body.pool_id, body.nonce):
            raise ApiError(409, "invite_used", f"invite nonce {body.nonce} was already used in pool {body.pool_id}")
        invite = PoolInvite(
            domain_id=body.domain_id, pool_id=body.pool_id, node=miner.keys.node.address, nonce=body.nonce,
            expiry=body.expiry,
        )  # fmt: skip
        try:
            receipt = await network.join_pool(
                network.transactor(miner.keys.provider), invite, bytes.fromhex(body.signature.removeprefix("0x"))
            )
        except ContractRevertError as exc:
            raise ApiError(422, "join_refused", str(exc)) from None
        return "0x" + bytes(receipt["transactionHash"]).hex()

    # --- task ----------------------------------------------------------------------------------------

    @app.get("/task/logs", tags=["task"])
    async def task_logs(
        _: Annotated[Signer, Depends(pool_owner)], tail: Annotated[int, Query(ge=1, le=MAX_LOG_LINES)] = 300
    ) -> dict[str, Any]:
        """The last `tail` lines of the task container's stdout and stderr."""
        try:
            logs = await miner.runner.logs(tail)
        except NoTaskContainerError as exc:
            raise ApiError(404, "no_task", str(exc)) from None
        status = await miner.runner.status()
        return {"task_id": status.task_id, "logs": logs}

    @app.post("/task/restart", tags=["task"])
    async def task_restart(_: Annotated[Signer, Depends(pool_owner)]) -> TaskStatus:
        """Restart the task's container (e.g. after it failed)."""
        try:
            return await miner.runner.restart()
        except NoTaskContainerError as exc:
            raise ApiError(404, "no_task", str(exc)) from None

    @app.post("/heartbeat/now", tags=["task"], status_code=202)
    async def heartbeat_now(_: Annotated[Signer, Depends(pool_owner)]) -> dict[str, str]:
        """The orchestrator's hint that this node's assignment changed: beat at once instead of at the next interval.
        Only a hint: the assignment itself still comes in the (signed, authoritative) heartbeat reply."""
        miner.heartbeat.wake()
        return {"result": "beating"}

    # --- challenge -----------------------------------------------------------------------------------

    @app.post("/challenge/commit", tags=["challenge"])
    async def challenge_commit(challenge: Challenge, _: Annotated[Signer, Depends(validators)]) -> Commitment:
        """Round 1: derive A and B, compute C = A.B (in a thread: the API stays responsive), commit to its rows."""
        book.reserve(challenge.challenge_id)
        try:
            async with book.compute:
                commitment, state = await asyncio.to_thread(solve_round1, challenge, backend)
        except ChallengeError as exc:
            book.release(challenge.challenge_id)
            raise ApiError(422, "challenge_invalid", str(exc)) from None
        except BaseException:
            book.release(challenge.challenge_id)
            raise
        book.store(challenge.challenge_id, state)
        return commitment

    @app.post("/challenge/open", tags=["challenge"])
    async def challenge_open(reveal: Reveal, _: Annotated[Signer, Depends(validators)]) -> Opening:
        """Round 2: C.r and the revealed rows with their Merkle proofs."""
        state = book.take(reveal.challenge_id)
        try:
            return await asyncio.to_thread(solve_round2, state, reveal)
        except ChallengeError as exc:
            raise ApiError(422, "challenge_invalid", str(exc)) from None

    # --- ops -----------------------------------------------------------------------------------------

    @app.get("/health", tags=["ops"])
    async def health() -> dict[str, Any]:
        state = miner.memory.state
        return {
            "status": "ok",
            "node": miner.node,
            "pool_id": state.pool_id,
            "orchestrator_url": state.orchestrator_url,
            "last_heartbeat_reply_at": miner.heartbeat.last_reply_at,
        }
