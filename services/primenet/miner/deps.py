"""The miner's route dependencies: typed `Annotated` aliases over what `create_app` put on `app.state`.

app.state.miner             Miner (settings, keys, chain, runner, memory, heartbeat loop)
app.state.book              ChallengeBook: round-1 products waiting for their reveal
app.state.backend           Backend: the matmul backend that answers challenges
app.state.signed_auth       RequestAuthenticator: any proven signer (audience: this node)
app.state.validators_auth   RequestAuthenticator: VALIDATOR_ROLE holders only (on chain, cached)
app.state.pool_owner_check  Authorizer: creator or compute manager of the node's pool (on chain, cached)
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from primenet.core.app import from_state
from primenet.core.auth import Signer, signer_from_state
from primenet.core.errors import ApiError
from primenet.miner.challenge_book import ChallengeBook
from primenet.miner.miner import Miner
from primenet.miner.solver import Backend

# The proven signer of a request addressed to this node: anyone, or only VALIDATOR_ROLE holders (on chain, cached).
any_signer = signer_from_state("signed_auth")
validator_signer = signer_from_state("validators_auth")


MinerDep = Annotated[Miner, Depends(from_state("miner"))]


async def pool_owner(
    request: Request,
    signer: Annotated[Signer, Depends(any_signer)],
    miner: MinerDep,
) -> Signer:
    """The proven signer, refused (403 `not_pool_owner`) unless it is the creator or compute manager of the pool."""
    if not await request.app.state.pool_owner_check(signer.address):
        pool_id = miner.settings.pool_id
        raise ApiError(403, "not_pool_owner", f"{signer.address} is neither creator nor manager of pool {pool_id}")
    return signer


ChallengeBookDep = Annotated[ChallengeBook, Depends(from_state("book"))]
BackendDep = Annotated[Backend, Depends(from_state("backend"))]
ValidatorSigner = Annotated[Signer, Depends(validator_signer)]
PoolOwner = Annotated[Signer, Depends(pool_owner)]
