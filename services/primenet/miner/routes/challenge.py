"""The proof-of-compute challenge, for VALIDATOR_ROLE holders: round 1 (commit), round 2 (open)."""

from __future__ import annotations

import asyncio

import structlog
from fastapi import APIRouter

from primenet.core.challenge.wire import Challenge, ChallengeError, Commitment, Opening, Reveal
from primenet.core.errors import ApiError
from primenet.miner.deps import BackendDep, ChallengeBookDep, ValidatorSigner
from primenet.miner.solver import solve_round1, solve_round2

router = APIRouter(prefix="/challenge", tags=["challenge"])
log = structlog.get_logger(__name__)


@router.post("/commit")
async def challenge_commit(
    challenge: Challenge, book: ChallengeBookDep, backend: BackendDep, _: ValidatorSigner
) -> Commitment:
    """Round 1: derive A and B, compute C = A.B (in a thread: the API stays responsive), commit to its rows."""
    # One line per challenge the miner takes on: what an operator (and the fault tests) count.
    log.info("challenge received", challenge_id=challenge.challenge_id, n=challenge.n)
    book.reserve(challenge.challenge_id)
    try:
        async with book.compute:
            commitment, committed = await asyncio.to_thread(solve_round1, challenge, backend)
    except ChallengeError as exc:
        book.release(challenge.challenge_id)
        raise ApiError(422, "challenge_invalid", str(exc)) from None
    except BaseException:
        book.release(challenge.challenge_id)
        raise
    book.store(challenge.challenge_id, committed)
    return commitment


@router.post("/open")
async def challenge_open(reveal: Reveal, book: ChallengeBookDep, _: ValidatorSigner) -> Opening:
    """Round 2: C.r and the revealed rows with their Merkle proofs."""
    committed = book.take(reveal.challenge_id)
    try:
        return await asyncio.to_thread(solve_round2, committed, reveal)
    except ChallengeError as exc:
        raise ApiError(422, "challenge_invalid", str(exc)) from None
