"""The whole provider/node/pool lifecycle through `primenet.chain`, against a real Anvil.

Every deployment here is fresh (deployed by the test), so tests do not see each other's state.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from primenet.chain.contracts import Network, PoolStatus
from primenet.chain.deploy import deploy, is_live
from primenet.chain.eip712 import PoolInvite, digest, node_key_message, sign
from primenet.chain.errors import ContractRevertError
from primenet.chain.rpc import connect
from primenet.chain.tx import Transactor
from primenet.devnet.accounts import role_account
from primenet.devnet.anvil import advance_time

TOKEN = 10**18
UNITS = 4
UNBONDING = 3600

federator = role_account("federator")
validator = role_account("validator")
manager = role_account("orchestrator")
provider = role_account("provider")


@pytest.fixture
async def net(rpc_url: str) -> AsyncIterator[Network]:
    w3 = connect(rpc_url)
    deployment = await deploy(
        w3, federator, validator=validator.address, unbonding_period_s=UNBONDING, stake_minimum=TOKEN
    )
    async with Network(w3, deployment) as network:
        yield network


def tx(net: Network, account: LocalAccount) -> Transactor:
    return net.transactor(account)


async def chain_time(net: Network) -> int:
    block = await net.w3.eth.get_block("latest")
    return int(block["timestamp"])


async def pool_with_node(net: Network) -> tuple[int, int, LocalAccount]:
    """Domain + ACTIVE pool managed by `manager`, and a validated node of a whitelisted, staked provider."""
    fed, prov = tx(net, federator), tx(net, provider)
    domain_id = await net.create_domain(fed, "inference", "ipfs://domain")
    pool_id = await net.create_pool(fed, domain_id=domain_id, manager=manager.address, name="pool", data_uri="gpu=1")
    await net.start_pool(tx(net, manager), pool_id)
    await net.mint(fed, provider.address, 100 * TOKEN)
    await net.register_provider(prov, UNITS * TOKEN)
    await net.whitelist_provider(tx(net, validator), provider.address)
    node = Account.create()
    await net.add_node(prov, node, compute_units=UNITS, specs_uri="ipfs://specs")
    await net.validate_node(tx(net, validator), provider.address, node.address)
    return domain_id, pool_id, node


async def invite_for(net: Network, domain: int, pool: int, node: str, *, nonce: int, ttl: int = 600) -> PoolInvite:
    return PoolInvite(domain_id=domain, pool_id=pool, node=node, nonce=nonce, expiry=await chain_time(net) + ttl)


async def test_full_lifecycle(net: Network) -> None:
    fed, prov, man = tx(net, federator), tx(net, provider), tx(net, manager)
    domain_id = await net.create_domain(fed, "inference", "")
    pool_id = await net.create_pool(fed, domain_id=domain_id, manager=manager.address, name="p0", data_uri="gpu=1")
    await net.start_pool(man, pool_id)
    assert (await net.pool(pool_id)).status is PoolStatus.ACTIVE

    # Provider registers with stake; is whitelisted; adds a node with the node key's EIP-712 signature.
    await net.mint(fed, provider.address, 100 * TOKEN)
    stake = await net.minimum_stake(provider.address, UNITS)
    assert stake == UNITS * TOKEN
    await net.register_provider(prov, stake)
    info = await net.provider(provider.address)
    assert (info.is_registered, info.is_whitelisted, info.stake) == (True, False, stake)
    await net.whitelist_provider(tx(net, validator), provider.address)
    node = Account.create()
    await net.add_node(prov, node, compute_units=UNITS, specs_uri="ipfs://specs")
    record = await net.node(node.address)
    assert record is not None
    assert (record.provider, record.compute_units, record.is_active, record.is_validated) == (
        provider.address,
        UNITS,
        False,
        False,
    )

    # Validated; the manager signs an invite; the provider joins the pool with it.
    await net.validate_node(tx(net, validator), provider.address, node.address)
    invite = await invite_for(net, domain_id, pool_id, node.address, nonce=1)
    await net.join_pool(prov, invite, net.sign_invite(manager, invite))
    assert await net.is_node_in_pool(pool_id, node.address)
    assert await net.node_pool(node.address) == pool_id
    record = await net.node(node.address)
    assert record is not None
    assert record.is_active

    # Ejected by the manager; rejoins with a fresh invite; leaves.
    await net.eject_node(man, pool_id, node.address)
    assert not await net.is_node_in_pool(pool_id, node.address)
    fresh = await invite_for(net, domain_id, pool_id, node.address, nonce=2)
    await net.join_pool(prov, fresh, net.sign_invite(manager, fresh))
    assert await net.pool_nodes(pool_id) == [node.address]
    await net.leave_pool(prov, pool_id, node.address)
    assert await net.node_pool(node.address) is None

    # Node removed; the whole stake is reclaimable, unbonds, and is withdrawn after the period.
    await net.remove_node(prov, provider.address, node.address)
    assert await net.node(node.address) is None
    balance_before = await net.balance(provider.address)
    await net.reclaim_stake(prov, stake)
    assert await net.withdrawable(provider.address) == 0
    with pytest.raises(ContractRevertError):
        await net.withdraw(prov)  # still unbonding
    await advance_time(net.w3, UNBONDING + 1)
    assert await net.withdrawable(provider.address) == stake
    await net.withdraw(prov)
    assert await net.balance(provider.address) == balance_before + stake
    assert await net.stake_of(provider.address) == 0


async def test_replayed_invite_reverts_with_a_decoded_error(net: Network) -> None:
    domain_id, pool_id, node = await pool_with_node(net)
    prov = tx(net, provider)
    invite = await invite_for(net, domain_id, pool_id, node.address, nonce=7)
    signature = net.sign_invite(manager, invite)
    await net.join_pool(prov, invite, signature)
    await net.leave_pool(prov, pool_id, node.address)
    with pytest.raises(ContractRevertError) as caught:
        await net.join_pool(prov, invite, signature)
    assert caught.value.error == "InviteAlreadyUsed"
    assert "joinComputePool reverted: InviteAlreadyUsed" in str(caught.value)


async def test_expired_invite_reverts(net: Network) -> None:
    domain_id, pool_id, node = await pool_with_node(net)
    invite = await invite_for(net, domain_id, pool_id, node.address, nonce=1, ttl=60)
    signature = net.sign_invite(manager, invite)
    await advance_time(net.w3, 120)
    with pytest.raises(ContractRevertError) as caught:
        await net.join_pool(tx(net, provider), invite, signature)
    assert caught.value.error == "InviteExpired"
    assert caught.value.args_by_name["expiry"] == invite.expiry


async def test_invite_for_another_pool_or_chain_reverts(net: Network) -> None:
    domain_id, pool_id, node = await pool_with_node(net)
    fed = tx(net, federator)
    other_pool = await net.create_pool(fed, domain_id=domain_id, manager=manager.address, name="other")
    await net.start_pool(fed, other_pool)
    prov = tx(net, provider)

    # Signed for the other pool, submitted for this one.
    invite = await invite_for(net, domain_id, other_pool, node.address, nonce=1)
    signature = net.sign_invite(manager, invite)
    with pytest.raises(ContractRevertError) as wrong_pool:
        await net.join_pool(prov, replace(invite, pool_id=pool_id), signature)
    assert wrong_pool.value.error == "InvalidInviteSignature"

    # Signed for another chain id: the same fields, but an EIP-712 domain this chain does not accept.
    invite = await invite_for(net, domain_id, pool_id, node.address, nonce=2)
    foreign = sign(manager, invite.message(chain_id=net.chain_id + 1, compute_pool=net.pools.address))
    with pytest.raises(ContractRevertError) as wrong_chain:
        await net.join_pool(prov, invite, foreign)
    assert wrong_chain.value.error == "InvalidInviteSignature"

    # Signed by someone who is not the pool's compute manager.
    with pytest.raises(ContractRevertError) as wrong_signer:
        await net.join_pool(prov, invite, net.sign_invite(Account.create(), invite))
    assert wrong_signer.value.error == "InvalidInviteSignature"
    assert not await net.is_node_in_pool(pool_id, node.address)


async def test_eip712_digests_match_the_deployed_contracts(net: Network) -> None:
    node = Account.create()
    ours = node_key_message(
        chain_id=net.chain_id, prime_network=net.prime.address, provider=provider.address, node=node.address, nonce=5
    )
    assert digest(ours) == await net.onchain_node_key_digest(provider.address, node.address, 5)
    invite = PoolInvite(domain_id=3, pool_id=9, node=node.address, nonce=2**200, expiry=int(time.time()) + 99)
    assert net.invite_digest(invite) == await net.onchain_invite_digest(invite)


async def test_forged_node_signature_and_bad_input_are_decoded(net: Network) -> None:
    fed, prov = tx(net, federator), tx(net, provider)
    await net.mint(fed, provider.address, 100 * TOKEN)

    with pytest.raises(ContractRevertError) as low:
        await net.register_provider(prov, TOKEN // 2)
    assert low.value.error == "StakeBelowMinimum"

    await net.register_provider(prov, UNITS * TOKEN)
    await net.whitelist_provider(fed, provider.address)
    node, impostor = Account.create(), Account.create()
    forged = await net.node_key_signature(impostor, provider.address)  # signed by a key that is not the node
    with pytest.raises(ContractRevertError) as bad_signature:
        await prov.send(net.add_node_call(node.address, "", UNITS, forged))
    assert bad_signature.value.error == "InvalidNodeSignature"

    with pytest.raises(ContractRevertError) as too_big:
        await net.add_node(prov, node, compute_units=UNITS * 10)
    assert too_big.value.error == "StakeBelowMinimum"

    with pytest.raises(ContractRevertError) as outsider:
        await net.whitelist_provider(tx(net, Account.create()), provider.address)
    assert outsider.value.error == "NotFederatorOrValidator"


async def test_redeploy_check_sees_a_live_deployment(net: Network) -> None:
    assert await is_live(net.w3, net.deployment)
    stale = net.deployment.model_copy(update={"contracts": {"AIToken": "0x" + "11" * 20}})
    assert not await is_live(net.w3, stale)
