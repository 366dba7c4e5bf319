"""The orchestrator's route dependencies: typed `Annotated` aliases over what `create_app` put on `app.state`.

    app.state.orchestrator      Orchestrator (the heartbeat handling, the loops' stats, the chain and its settings)
    app.state.store             OrchestratorStore
    app.state.guard             StoreGuard: the store-lost hold (its state, the operator's confirmation)
    app.state.miners            MinerClient: signed calls to the miners' APIs
    app.state.nodes_auth        RequestAuthenticator: requests signed by a known node's key for this pool's audience
    app.state.reply_signer      ReplySigner: signs heartbeat replies with the manager key for this pool's audience
    app.state.admin_token       the operator's bearer token (None: no admin), read by `core.admin.AdminOnly`

Every getter is `async def` although none awaits anything but the authenticator: FastAPI runs a plain `def`
dependency in its thread pool, a hop per request that the heartbeat (the hot path) should not pay.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from primenet.core.app import from_state
from primenet.core.auth import Signer, signer_from_state
from primenet.core.errors import ApiError
from primenet.core.params import AddressPath
from primenet.core.replies import ReplySigner
from primenet.orchestrator.guard import StoreGuard
from primenet.orchestrator.orchestrator import Orchestrator
from primenet.orchestrator.peers import MinerClient
from primenet.orchestrator.store import NodeRow, OrchestratorStore

# The proven signer of a request signed for this pool's orchestrator, by the key of a node it knows (the route
# decides what a banned node gets).
node_signer = signer_from_state("nodes_auth")


OrchestratorDep = Annotated[Orchestrator, Depends(from_state("orchestrator"))]
StoreDep = Annotated[OrchestratorStore, Depends(from_state("store"))]
GuardDep = Annotated[StoreGuard, Depends(from_state("guard"))]
MinersDep = Annotated[MinerClient, Depends(from_state("miners"))]
NodeSigner = Annotated[Signer, Depends(node_signer)]
ReplySignerDep = Annotated[ReplySigner, Depends(from_state("reply_signer"))]


async def known_node(address: AddressPath, store: StoreDep) -> NodeRow:
    """The node named by the `{address}` path parameter (any case); 404 `node_not_found` when we do not know it."""
    node = await store.node(address.lower())
    if node is None:
        raise ApiError(404, "node_not_found", f"no node {address} in this orchestrator")
    return node


KnownNode = Annotated[NodeRow, Depends(known_node)]
