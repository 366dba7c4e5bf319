"""Node records: the signed upload (`PUT /api/nodes`) and the reads of validators, pool owners and nodes."""

from __future__ import annotations

import json
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Query
from fastapi.responses import Response
from prometheus_client import Counter

from primenet.core.models import NodeRecord, SpecsBinding, specs_hash
from primenet.core.nodeaddr import AddressRefusedError, ip_limit_key
from primenet.core.params import AddressPath
from primenet.core.requirements import RequirementsError, parse
from primenet.discovery.deps import (
    AnySigner,
    ChainViewDep,
    SettingsDep,
    SignerOrAdmin,
    StoreDep,
    SyncDep,
    ValidatorSigner,
)
from primenet.discovery.routes.shared import PoolId, refuse
from primenet.discovery.store import ConflictError, SpecsChangedError

log = structlog.get_logger(__name__)

REGISTRATIONS = Counter("primenet_discovery_registrations", "Node uploads accepted, by result", ["result"])

LISTING_DOC: dict[int | str, dict[str, Any]] = {
    200: {"description": '`{"nodes": [node, ...], "count": n, "cursor": "<feed cursor>"}`'}
}

router = APIRouter(prefix="/api", tags=["nodes"])


def listing(nodes: list[str], cursor: str) -> Response:
    """Joined from pre-serialized nodes (see DiscoveryStore.listing_json): no per-node model work."""
    body = f'{{"nodes":[{",".join(nodes)}],"count":{len(nodes)},"cursor":{json.dumps(cursor)}}}'
    return Response(body, media_type="application/json")


# --- writes ----------------------------------------------------------------------------------------


@router.put("/nodes")
async def put_node(
    record: NodeRecord, signer: AnySigner, view: ChainViewDep, store: StoreDep, settings: SettingsDep
) -> dict[str, Any]:
    """Register or update the signing node's record (checked against the chain and the pool).

    The record's `ip` must be an IP literal (the model refuses anything else with 422 `invalid_request`) in a
    range the settings allow: loopback, private, link-local, multicast, reserved and unspecified addresses get
    422 `address_refused` (loopback and private ones are allowed by `allow_loopback_nodes` /
    `allow_private_nodes`), so validators and orchestrators are never pointed at them.
    """
    if signer.address != record.node:
        raise refuse(403, "signer_not_node", f"signed by {signer.address}, but the record is for {record.node}")
    try:
        settings.node_addresses().check(record.ip)
    except AddressRefusedError as exc:
        raise refuse(422, "address_refused", f"ip: {exc}", {"reason": exc.reason}) from None
    pool = await view.pool(record.pool_id)
    if pool is None:
        raise refuse(422, "pool_not_found", f"pool {record.pool_id} does not exist on chain")
    info, flags = await view.check(record.node, record.provider, record.pool_id)
    if info is None:
        raise refuse(422, "node_not_on_chain", f"node {record.node} is not registered in the compute registry")
    if info.provider.lower() != record.provider:
        raise refuse(422, "provider_mismatch", f"node {record.node} belongs to {info.provider}, not {record.provider}")
    try:
        requirements = parse(pool.data_uri)
    except RequirementsError as exc:
        raise refuse(
            422, "pool_requirements_invalid", f"pool {pool.pool_id} has unusable requirements: {exc}"
        ) from None
    unmet = requirements.unmet(record.specs)
    if unmet:
        raise refuse(422, "requirements_not_met", f"the node does not meet pool {pool.pool_id}'s needs", unmet)
    for _ in range(5):
        current = await store.get(record.node)
        if current is not None and current.active and _placement(current.record) != _placement(record):
            raise refuse(
                409,
                "node_active_in_pool",
                "the node is active in a pool: its provider, address and pool cannot change until it leaves",
            )
        others = await store.active_on_ip(record.ip, excluding=record.node)
        if others >= settings.max_nodes_per_ip:
            raise refuse(
                409,
                "ip_limit_reached",
                f"{ip_limit_key(record.ip)} already has {others} active node(s) (at most {settings.max_nodes_per_ip})",
            )
        try:
            stored, result = await store.upsert(record, flags.as_dict(), expected=current)
        except ConflictError:
            continue  # a concurrent upload of this node won: re-read and re-check
        REGISTRATIONS.labels(result).inc()
        return {"result": result, "node": stored.public()}
    raise refuse(409, "concurrent_update", "the node was updated concurrently too often; retry")


def _placement(record: NodeRecord) -> tuple[str, str, int, int]:
    """What may not change while a node is active in a pool (its hardware specs may: free disk moves)."""
    return record.provider, record.ip, record.port, record.pool_id


@router.put("/validator/nodes/{address}/specs")
async def bind_specs(
    address: AddressPath, binding: SpecsBinding, _: ValidatorSigner, store: StoreDep, sync: SyncDep
) -> dict[str, Any]:
    """Bind the node's validation to the specs its passed challenge vouched for (VALIDATOR_ROLE signers only).

    From then on the node is served validated (`is_validated`) only while the specs it uploads hash to
    `specs_hash` (`primenet.core.models.specs_hash`); other specs send it back to the validators. Refused: 422
    `specs_hash_mismatch` (the hash is not that of the specs given), 404 `node_not_found`, 409 `specs_changed`
    (the node's record has other specs now: challenge those).

    A validator binds right after its validateNode was mined, so the node's chain flags are re-read here too:
    the node is served validated (and its pool's orchestrator hears of it) now rather than at the next sync tick.
    """
    if binding.specs_hash != specs_hash(binding.specs):
        raise refuse(422, "specs_hash_mismatch", "specs_hash is not the hash of the specs given")
    try:
        stored = await store.bind_specs(address, binding.specs)
    except SpecsChangedError:
        message = f"{address.lower()} uploaded other specs since they were challenged"
        raise refuse(409, "specs_changed", message) from None
    except ConflictError:
        raise refuse(409, "concurrent_update", "the node was updated concurrently too often; retry") from None
    if stored is None:
        raise refuse(404, "node_not_found", f"no record for {address}")
    try:
        await sync.refresh({address.lower()})
    except Exception as exc:  # the chain is down: the binding holds, the sync's next pass reads the flags
        log.warning("reading the bound node's chain flags failed", node=address, error=str(exc)[:300])
    else:
        stored = await store.get(address) or stored
    return {"result": "bound", "node": stored.public()}


# --- reads -----------------------------------------------------------------------------------------


@router.get("/validator", responses=LISTING_DOC)
async def validator_listing(
    _: ValidatorSigner, store: StoreDep, validated: Annotated[bool | None, Query()] = None
) -> Response:
    """Every node, for validators (`?validated=false`: only those still to validate)."""
    cursor = await store.latest_cursor()
    return listing(await store.listing_json(validated=validated), cursor)


@router.get("/pool/{pool_id}", responses=LISTING_DOC)
async def pool_listing(pool_id: PoolId, signer: AnySigner, view: ChainViewDep, store: StoreDep) -> Response:
    """The nodes that named this pool, for its creator or compute manager."""
    if await view.pool(pool_id) is None:
        raise refuse(404, "pool_not_found", f"pool {pool_id} does not exist on chain")
    if not await view.is_pool_owner(pool_id, signer.address):
        raise refuse(403, "not_pool_owner", f"{signer.address} is neither creator nor manager of pool {pool_id}")
    cursor = await store.latest_cursor()
    return listing(await store.listing_json(pool_id=pool_id), cursor)


@router.get("/nodes/{address}")
async def get_node(address: AddressPath, caller: SignerOrAdmin, store: StoreDep) -> dict[str, Any]:
    """One node's record, for the node itself or the admin."""
    if caller is not None and caller.address != address.lower():
        raise refuse(403, "not_this_node", "only the node itself (or the admin) may read this record")
    stored = await store.get(address)
    if stored is None:
        raise refuse(404, "node_not_found", f"no record for {address}")
    return stored.public()
