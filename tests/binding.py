"""What the validator does after a passed challenge, for tests that validate a node on chain themselves: bind the
node's validation to the specs discovery holds for it (`PUT /api/validator/nodes/{node}/specs`)."""

from __future__ import annotations

from primenet.core.discovery_client import DiscoveryReader, ListedNode
from primenet.devnet.accounts import role_account
from waiting import until


async def bind_listed_specs(discovery_url: str, node: str, *, chain_id: int = 31337) -> ListedNode:
    """Bind `node`'s validation to the specs of its discovery record (waiting for the record); returns the listing
    entry as it was before the binding."""
    async with DiscoveryReader(discovery_url, role_account("validator"), chain_id=chain_id) as reader:
        listed = await until(lambda: reader.node(node), f"discovery to list {node}")
        await reader.bind_specs(node, listed.record.specs)
    return listed
