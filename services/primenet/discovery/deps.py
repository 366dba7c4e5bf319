"""Discovery's route dependencies: typed `Annotated` aliases over what `create_app` put on `app.state`.

app.state.settings          DiscoverySettings
app.state.store             DiscoveryStore
app.state.view              ChainView (what the chain says, cached briefly)
app.state.sync              ChainSync (its health)
app.state.signed_auth       RequestAuthenticator: any proven signer
app.state.validators_auth   RequestAuthenticator: VALIDATOR_ROLE holders only
app.state.admin_token       the operator's bearer token (None: no admin)
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from primenet.core.admin import bearer, require_admin
from primenet.core.app import from_state
from primenet.core.auth import Signer, signer_from_state
from primenet.discovery.chainview import ChainView
from primenet.discovery.settings import DiscoverySettings
from primenet.discovery.store import DiscoveryStore
from primenet.discovery.sync import ChainSync

# The proven signer of a signed request: anyone (the route decides what it may do), or only VALIDATOR_ROLE holders.
any_signer = signer_from_state("signed_auth")
validator_signer = signer_from_state("validators_auth")


async def signer_or_admin(request: Request) -> Signer | None:
    """None for the admin (bearer token); otherwise the proven signer of a signed request.

    A request that carries a bearer token is judged as an admin request only: a wrong token is refused (401),
    never retried as a signed request.
    """
    token = bearer(request)
    if token is None:
        return await any_signer(request)
    require_admin(token, request.app.state.admin_token)
    return None


SettingsDep = Annotated[DiscoverySettings, Depends(from_state("settings"))]
StoreDep = Annotated[DiscoveryStore, Depends(from_state("store"))]
ChainViewDep = Annotated[ChainView, Depends(from_state("view"))]
SyncDep = Annotated[ChainSync, Depends(from_state("sync"))]
AnySigner = Annotated[Signer, Depends(any_signer)]
ValidatorSigner = Annotated[Signer, Depends(validator_signer)]
SignerOrAdmin = Annotated[Signer | None, Depends(signer_or_admin)]
