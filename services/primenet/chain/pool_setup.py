"""A deployment's first domain and pool, made once: what `primenet chain bootstrap` and the devnet both need."""

from __future__ import annotations

from dataclasses import dataclass

from eth_account.signers.local import LocalAccount

from primenet.chain.contracts import Network, PoolStatus
from primenet.chain.rpc import checksum


@dataclass(frozen=True)
class PoolSetup:
    domain_id: int
    pool_id: int
    created: bool  # False: an existing pool of that name and manager was found (and only started if PENDING)


async def ensure_pool(
    network: Network,
    federator: LocalAccount,
    *,
    manager: str,
    domain_name: str,
    pool_name: str,
    requirements: str = "",
) -> PoolSetup:
    """The ACTIVE pool `pool_name` managed by `manager` in the domain `domain_name`, made when absent.

    Idempotent, found by name on chain rather than in a local file: run again on the same deployment (a restarted
    one-shot container, a second `pulumi up`), it sends nothing, or only the start of a pool left PENDING. A pool of
    that name that has COMPLETED is not reused: a new one is created.
    """
    fed = network.transactor(federator)
    domain_id = await _find_domain(network, domain_name)
    if domain_id is None:
        domain_id = await network.create_domain(fed, domain_name, "")
    manager = checksum(manager)
    for pool_id in range(await network.pool_count()):
        pool = await network.pool(pool_id)
        if (pool.name, pool.domain_id, checksum(pool.compute_manager)) != (pool_name, domain_id, manager):
            continue
        if pool.status is PoolStatus.COMPLETED:
            continue
        if pool.status is PoolStatus.PENDING:
            await network.start_pool(fed, pool_id)
        return PoolSetup(domain_id=domain_id, pool_id=pool_id, created=False)
    pool_id = await network.create_pool(
        fed, domain_id=domain_id, manager=manager, name=pool_name, data_uri=requirements
    )
    await network.start_pool(fed, pool_id)
    return PoolSetup(domain_id=domain_id, pool_id=pool_id, created=True)


async def _find_domain(network: Network, name: str) -> int | None:
    for domain_id in range(await network.domain_count()):
        if (await network.domain(domain_id)).name == name:
            return domain_id
    return None
