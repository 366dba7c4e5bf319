"""Slashing that one hot key cannot abuse, attacked through `primenet.chain` against a real Anvil.

Before this defence any VALIDATOR_ROLE key could send a provider's whole stake to itself in one call. Each test
here performs an abuse with the key an attacker would hold and checks that the chain refused it with a decoded,
named error and that no token moved. Fresh deployments (made by the test) hold the slashing state, so the session
devnet's counters stay untouched; the devnet's own setup is only read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from primenet.chain.contracts import Network, SlashLimits
from primenet.chain.deploy import deploy
from primenet.chain.errors import ContractRevertError
from primenet.chain.roles import FEDERATOR_ROLE, SLASHER_ROLE
from primenet.chain.rpc import checksum, connect
from primenet.devnet.accounts import role_account
from primenet.devnet.anvil import advance_time
from primenet.devnet.chain_setup import DEVNET_SLASH_LIMITS

TOKEN = 10**18
PERIOD_S = 120
LIMITS = SlashLimits(
    per_call=2 * TOKEN, per_provider_per_period=3 * TOKEN, per_network_per_period=5 * TOKEN, period_s=PERIOD_S
)
REASON = b"failed challenge: wrong matrix product"

federator = role_account("federator")
validator = role_account("validator")


@dataclass
class Slashing:
    """A fresh deployment and the slasher key and treasury account made for it."""

    net: Network
    slasher: LocalAccount = field(default_factory=Account.create)
    treasury: LocalAccount = field(default_factory=Account.create)


async def _deployment(rpc_url: str, *, configured: bool) -> Slashing:
    """A fresh deployment whose slasher and treasury are set (configured) or left unset (slashing refused)."""
    w3 = connect(rpc_url)
    slasher, treasury = Account.create(), Account.create()
    deployment = await deploy(
        w3,
        federator,
        validator=validator.address,
        unbonding_period_s=600,
        stake_minimum=TOKEN,
        treasury=treasury.address if configured else None,
        slash_limits=LIMITS if configured else None,
        slasher=slasher.address if configured else None,
    )
    made = Slashing(Network(w3, deployment), slasher, treasury)
    await _fund_gas(made.net, slasher)
    return made


@pytest.fixture
async def chain(rpc_url: str) -> AsyncIterator[Slashing]:
    made = await _deployment(rpc_url, configured=True)
    async with made.net:
        yield made


def named(refusal: pytest.ExceptionInfo[ContractRevertError]) -> dict[str, Any]:
    """The revert's arguments, addresses checksummed (the decoder gives them in lower case)."""
    args = refusal.value.args_by_name
    return {k: checksum(v) if isinstance(v, str) and len(v) == 42 else v for k, v in args.items()}


async def _fund_gas(net: Network, account: LocalAccount) -> None:
    """ETH for gas, from the federator's dev account."""
    await net.transactor(federator).transfer(account.address, TOKEN)


async def _funded_provider(net: Network, stake: int = 50 * TOKEN) -> LocalAccount:
    """A new registered provider with `stake` staked."""
    provider: LocalAccount = Account.create()
    await _fund_gas(net, provider)
    await net.mint(net.transactor(federator), provider.address, stake)
    await net.register_provider(net.transactor(provider), stake)
    return provider


async def test_a_validator_key_cannot_slash_a_provider_to_itself(chain: Slashing) -> None:
    net = chain.net
    victim = await _funded_provider(net)
    before = await net.balance(validator.address)
    with pytest.raises(ContractRevertError) as refused:
        await net.slash(net.transactor(validator), victim.address, 50 * TOKEN, b"give it to me")
    assert refused.value.error == "AccessControlUnauthorizedAccount"
    assert named(refused) == {"account": validator.address, "neededRole": SLASHER_ROLE}
    assert "neededRole=SLASHER_ROLE" in str(refused.value)  # the message names the missing role
    assert await net.stake_of(victim.address) == 50 * TOKEN
    assert await net.balance(validator.address) == before

    # Nor can it make itself a slasher or point the treasury at itself: both belong to the federator.
    with pytest.raises(ContractRevertError) as grant:
        await net.grant_role(net.transactor(validator), SLASHER_ROLE, validator.address)
    assert named(grant) == {"account": validator.address, "neededRole": FEDERATOR_ROLE}
    with pytest.raises(ContractRevertError) as redirect:
        await net.set_treasury(net.transactor(validator), validator.address)
    assert named(redirect) == {"account": validator.address, "neededRole": FEDERATOR_ROLE}
    assert await net.treasury() == chain.treasury.address


async def test_a_slasher_key_cannot_exceed_the_caps_nor_pay_itself(chain: Slashing) -> None:
    net, slasher = chain.net, chain.slasher
    victim, other = await _funded_provider(net), await _funded_provider(net)
    hot = net.transactor(slasher)

    with pytest.raises(ContractRevertError) as per_call:
        await net.slash(hot, victim.address, 50 * TOKEN, b"everything")
    assert per_call.value.error == "SlashExceedsCallCap"
    assert named(per_call) == {"amount": 50 * TOKEN, "cap": LIMITS.per_call}

    assert await net.slash(hot, victim.address, 2 * TOKEN, REASON) == 2 * TOKEN
    assert await net.slash_allowance(victim.address) == TOKEN
    with pytest.raises(ContractRevertError) as per_provider:
        await net.slash(hot, victim.address, 2 * TOKEN, REASON)
    assert per_provider.value.error == "SlashExceedsProviderPeriodCap"
    assert named(per_provider) == {"provider": victim.address, "amount": 2 * TOKEN, "remaining": TOKEN}

    await net.slash(hot, victim.address, TOKEN, REASON)
    await net.slash(hot, other.address, 2 * TOKEN, REASON)
    with pytest.raises(ContractRevertError) as per_network:
        await net.slash(hot, other.address, 1, REASON)
    assert per_network.value.error == "SlashExceedsNetworkPeriodCap"
    assert named(per_network) == {"amount": 1, "remaining": 0}

    # What left went to the treasury, never to the key that asked; the caps open again after the period.
    assert await net.balance(chain.treasury.address) == 5 * TOKEN
    assert await net.balance(slasher.address) == 0
    assert await net.stake_of(victim.address) == 47 * TOKEN
    await advance_time(net.w3, PERIOD_S)
    assert await net.slash_allowance(victim.address) == LIMITS.per_call


async def test_the_slash_events_carry_the_reason_and_the_slasher(chain: Slashing) -> None:
    net, slasher, treasury = chain.net, chain.slasher, chain.treasury.address
    victim = await _funded_provider(net)
    receipt = await net.transactor(slasher).send(net.prime.functions.slash(victim.address, TOKEN, REASON))
    (event,) = net.events(net.prime, "ProviderSlashed", receipt)
    assert event == {
        "provider": victim.address,
        "slasher": slasher.address,
        "treasury": treasury,
        "amount": TOKEN,
        "reason": REASON,
    }
    (stake_event,) = net.events(net.stake_manager, "Slashed", receipt)
    assert (stake_event["recipient"], stake_event["reason"]) == (treasury, REASON)

    with pytest.raises(ContractRevertError) as no_reason:
        await net.slash(net.transactor(slasher), victim.address, TOKEN, b"")
    assert (no_reason.value.error, named(no_reason)) == ("InvalidSlashReason", {"length": 0})


async def test_an_unconfigured_deployment_refuses_to_slash(rpc_url: str) -> None:
    made = await _deployment(rpc_url, configured=False)
    async with made.net as net:
        slasher = made.slasher
        assert await net.treasury() is None
        assert await net.slash_limits() == SlashLimits(0, 0, 0, 0)
        victim = await _funded_provider(net)
        fed = net.transactor(federator)
        await net.grant_role(fed, SLASHER_ROLE, slasher.address)
        with pytest.raises(ContractRevertError) as no_treasury:
            await net.slash(net.transactor(slasher), victim.address, 1, REASON)
        assert no_treasury.value.error == "TreasuryNotSet"

        await net.set_treasury(fed, made.treasury.address)
        with pytest.raises(ContractRevertError) as no_limits:
            await net.slash(net.transactor(slasher), victim.address, 1, REASON)
        assert named(no_limits) == {"amount": 1, "cap": 0}
        with pytest.raises(ContractRevertError) as bad_period:
            await net.set_slash_limits(fed, SlashLimits(1, 1, 1, 0))
        assert bad_period.value.error == "InvalidSlashPeriod"
        with pytest.raises(ContractRevertError) as stuck:
            await net.set_treasury(fed, net.stake_manager.address)
        assert stuck.value.error == "InvalidTreasury"


async def test_the_devnet_grants_slashing_to_its_own_key_with_caps(network: Network) -> None:
    """The session devnet (set up by `devnet up`'s code): slasher and treasury are separate dev accounts."""
    slasher, treasury = role_account("slasher"), role_account("treasury")
    assert await network.is_slasher(slasher.address)
    assert not await network.is_slasher(validator.address)
    assert not await network.is_slasher(federator.address)
    assert await network.treasury() == treasury.address
    assert await network.slash_limits() == DEVNET_SLASH_LIMITS
    # The devnet's validator key, the one the validator service holds, is refused.
    with pytest.raises(ContractRevertError) as refused:
        await network.slash(network.transactor(validator), role_account("provider").address, TOKEN, b"give it to me")
    assert named(refused)["neededRole"] == SLASHER_ROLE
