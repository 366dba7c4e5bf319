"""The devnet's chain: deploy the contracts (once per Anvil), then domain 0 and pool 0, and fund the roles.

Slashing is set up as an operator would: the treasury and the slasher are their own dev accounts (never the
validator), and the caps are small next to the provider's funds.
"""

from __future__ import annotations

from collections.abc import Callable

from primenet.chain.contracts import Network, SlashLimits
from primenet.chain.deploy import deploy, is_live
from primenet.chain.deployment import Deployment
from primenet.chain.pool_setup import ensure_pool
from primenet.chain.rpc import connect
from primenet.devnet.accounts import role_account

TOKEN = 10**18
DEVNET_UNBONDING_PERIOD_S = 600  # short, so the whole exit path can be tried on a devnet
DEVNET_STAKE_MINIMUM = TOKEN  # one token per compute unit
PROVIDER_FUNDS = 100_000 * TOKEN
POOL_REQUIREMENTS = ""  # the devnet pool takes any node, GPU or not, so the demo runs anywhere
DEVNET_SLASH_LIMITS = SlashLimits(
    per_call=10 * TOKEN, per_provider_per_period=20 * TOKEN, per_network_per_period=100 * TOKEN, period_s=24 * 3600
)


async def prepare_chain(
    rpc_url: str, recorded: Deployment | None, progress: Callable[[str], None]
) -> tuple[Deployment, bool]:
    """Reuse the recorded deployment when it is live on this chain, else deploy and set up a fresh one.

    Returns the deployment and whether it is new (and so must be saved).
    """
    w3 = connect(rpc_url)
    try:
        if recorded is not None and await is_live(w3, recorded):
            progress("contracts already deployed; reusing them")
            return recorded, False
        federator = role_account("federator")
        deployment = await deploy(
            w3,
            federator,
            validator=role_account("validator").address,
            unbonding_period_s=DEVNET_UNBONDING_PERIOD_S,
            stake_minimum=DEVNET_STAKE_MINIMUM,
            treasury=role_account("treasury").address,
            slash_limits=DEVNET_SLASH_LIMITS,
            slasher=role_account("slasher").address,
            progress=progress,
        )
        network = Network(w3, deployment)
        setup = await ensure_pool(
            network,
            federator,
            manager=role_account("orchestrator").address,
            domain_name="devnet",
            pool_name="devnet pool",
            requirements=POOL_REQUIREMENTS,
        )
        progress(f"domain {setup.domain_id} and pool {setup.pool_id} (ACTIVE, managed by the orchestrator key) created")
        await network.mint(network.transactor(federator), role_account("provider").address, PROVIDER_FUNDS)
        progress(f"minted {PROVIDER_FUNDS // TOKEN} AI to the provider")
        return deployment, True
    finally:
        await w3.provider.disconnect()
