"""POST /invite: the pool owner's signed invite; the miner joins the pool on chain and heartbeats to it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from primenet.chain.eip712 import PoolInvite
from primenet.chain.errors import ContractRevertError
from primenet.core.errors import ApiError
from primenet.core.models import InviteRequest
from primenet.miner.deps import MinerDep, PoolOwner
from primenet.miner.miner import Miner

router = APIRouter(tags=["pool"])


@router.post("/invite")
async def invite(body: InviteRequest, miner: MinerDep, _: PoolOwner) -> dict[str, Any]:
    """Join the pool on chain with the manager's signed invite, then heartbeat to `orchestrator_url`."""
    settings, network = miner.settings, miner.network
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
            tx = await join(miner, body)
            result = "joined"
        miner.memory.update(pool_id=body.pool_id, orchestrator_url=body.orchestrator_url)
    miner.heartbeat.wake()
    return {"result": result, "pool_id": body.pool_id, "orchestrator_url": body.orchestrator_url, "tx": tx}


async def join(miner: Miner, body: InviteRequest) -> str:
    """joinComputePool with the invite's signature, once the chain says the node may join; returns the tx hash."""
    network = miner.network
    node = await network.node(miner.node)
    if node is None:
        raise ApiError(409, "node_not_registered", "the node is not in the compute registry")
    if not node.is_validated:
        raise ApiError(409, "node_not_validated", "the node is not validated yet; invite it after validation")
    if await network.invite_nonce_used(body.pool_id, body.nonce):
        raise ApiError(409, "invite_used", f"invite nonce {body.nonce} was already used in pool {body.pool_id}")
    signed = PoolInvite(
        domain_id=body.domain_id, pool_id=body.pool_id, node=miner.keys.node.address, nonce=body.nonce,
        expiry=body.expiry,
    )  # fmt: skip
    try:
        receipt = await network.join_pool(
            network.transactor(miner.keys.provider), signed, bytes.fromhex(body.signature.removeprefix("0x"))
        )
    except ContractRevertError as exc:
        raise ApiError(422, "join_refused", str(exc)) from None
    return "0x" + bytes(receipt["transactionHash"]).hex()
