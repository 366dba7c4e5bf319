"""The pool's nodes (admin): list, show, task logs and restart (asked of the node's miner), ban (on chain)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter

from primenet.chain.errors import ChainError, ChainUnavailableError, ContractRevertError
from primenet.core.admin import AdminOnly
from primenet.core.errors import ApiError
from primenet.core.params import LogTail
from primenet.orchestrator.deps import KnownNode, MinersDep, OrchestratorDep, StoreDep
from primenet.orchestrator.models import NodeStatus, NodeView
from primenet.orchestrator.peers import PeerError

router = APIRouter(prefix="/nodes", tags=["nodes"])


@router.get("")
async def list_nodes(_: AdminOnly, store: StoreDep) -> dict[str, Any]:
    views = [node.view() for node in await store.nodes()]
    return {"counts": await store.counts(), "nodes": [view.model_dump(mode="json") for view in views]}


@router.get("/{address}")
async def get_node(_: AdminOnly, node: KnownNode) -> NodeView:
    return node.view()


@router.get("/{address}/logs")
async def node_logs(_: AdminOnly, node: KnownNode, miners: MinersDep, tail: LogTail = 300) -> dict[str, Any]:
    """The node's task container output, fetched from the miner on demand (signed by the manager key)."""
    try:
        reply = await miners.logs(node.ip, node.port, node.address, tail)
    except PeerError as exc:
        raise _miner_failure(exc) from None
    return {"node": node.address, "task_id": reply.get("task_id"), "logs": reply.get("logs", "")}


@router.post("/{address}/restart")
async def node_restart(_: AdminOnly, node: KnownNode, miners: MinersDep) -> dict[str, Any]:
    try:
        return await miners.restart(node.ip, node.port, node.address)
    except PeerError as exc:
        raise _miner_failure(exc) from None


@router.post("/{address}/ban")
async def node_ban(_: AdminOnly, node: KnownNode, store: StoreDep, orchestrator: OrchestratorDep) -> dict[str, Any]:
    """blacklistNode on chain (ejects it when in the pool and keeps it out), then Banned: never invited again."""
    try:
        receipt = await orchestrator.network.blacklist_node(
            orchestrator.transactor, orchestrator.settings.pool_id, node.address
        )
    except ContractRevertError as exc:
        raise ApiError(409, "chain_refused", f"the pool contract refused blacklistNode: {exc}") from None
    except ChainUnavailableError:
        raise  # 503 chain_unavailable: retry later
    except ChainError as exc:
        raise ApiError(502, "chain_error", f"blacklistNode failed: {exc}") from None
    previous = await store.transition(node.address, NodeStatus.BANNED, now=time.time())
    await store.assign(node.address, None)
    await orchestrator.moved(node.address, NodeStatus.BANNED, previous)
    return {"node": node.address, "status": "banned", "tx": "0x" + bytes(receipt["transactionHash"]).hex()}


def _miner_failure(exc: PeerError) -> ApiError:
    """The miner's answer as ours: "no task there" is a plain 404 for the caller; a miner that cannot be reached or
    refuses our signed request is a gateway failure (502), the caller's request was fine."""
    if exc.code == "address_refused":  # its record names an address this orchestrator will not call
        return ApiError(502, "miner_address_refused", str(exc))
    if exc.status is None:
        return ApiError(502, "miner_unreachable", str(exc))
    if exc.status == 404 and exc.code == "no_task":
        return ApiError(404, "no_task", f"the node runs no task container: {exc}")
    return ApiError(502, "miner_error", f"the miner answered {exc.status}: {exc}")
