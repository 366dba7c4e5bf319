"""POST /heartbeat: a node's beat, signed by its node key for this pool (`core.auth.orchestrator_audience`).

The reply is a work order, so it is signed (`core.replies`): bound to the exact body bytes, the node, the beat's
nonce, this pool's audience and the chain, by the compute manager key the miner finds on chain."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from primenet.core.errors import ApiError
from primenet.core.models import Heartbeat, HeartbeatReply
from primenet.orchestrator.deps import NodeSigner, OrchestratorDep, ReplySignerDep
from primenet.orchestrator.orchestrator import HeartbeatRefusedError

router = APIRouter(tags=["nodes"])


@router.post("/heartbeat", response_model=HeartbeatReply)
async def heartbeat(
    body: Heartbeat, signer: NodeSigner, orchestrator: OrchestratorDep, replies: ReplySignerDep
) -> Response:
    """A node's beat: its task state in, its assignment out (none unless the node is Healthy), or `hold` during the
    store-lost hold (`orchestrator.guard`)."""
    try:
        reply = await orchestrator.heartbeat(signer.address, body)
    except HeartbeatRefusedError as exc:
        raise ApiError(403, exc.code, str(exc)) from None
    # Serialized here, once: FastAPI would dump, validate and dump the reply again (the hottest route).
    content = reply.model_dump_json().encode()
    headers = replies.header(content, node=signer.address, request_nonce=signer.nonce)
    return Response(content, media_type="application/json", headers=headers)
