"""The miner's route dependencies: typed `Annotated` aliases over what `create_app` put on `app.state`.

app.state.miner             Miner (settings, keys, chain, runner, memory, heartbeat loop)
app.state.book              ChallengeBook: round-1 products waiting for their reveal
app.state.backend           Backend: the matmul backend that answers challenges
app.state.validators_auth   RequestAuthenticator: VALIDATOR_ROLE holders only (on chain, cached); audience: this node
app.state.pool_owners_auth  RequestAuthenticator: the creator or compute manager of the node's pool (on chain, cached)

Both authorize before they admit, so a key that is neither records no nonce on this miner.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from primenet.core.app import from_state
from primenet.core.auth import Signer, signer_from_state
from primenet.miner.challenge_book import ChallengeBook
from primenet.miner.miner import Miner
from primenet.miner.solver import Backend

# The proven signer of a request addressed to this node: a VALIDATOR_ROLE holder, or an owner of its pool
# (403 `not_pool_owner` for anyone else).
validator_signer = signer_from_state("validators_auth")
pool_owner = signer_from_state("pool_owners_auth")


MinerDep = Annotated[Miner, Depends(from_state("miner"))]
ChallengeBookDep = Annotated[ChallengeBook, Depends(from_state("book"))]
BackendDep = Annotated[Backend, Depends(from_state("backend"))]
ValidatorSigner = Annotated[Signer, Depends(validator_signer)]
PoolOwner = Annotated[Signer, Depends(pool_owner)]
