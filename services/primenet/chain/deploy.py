"""Deploy the contracts in dependency order and wire them, or report the deployment that already exists.

Order: AIToken -> PrimeNetwork(federator, validator, token) -> ComputeRegistry(network) ->
DomainRegistry(network) -> StakeManager(network, token, unbonding period) ->
ComputePool(network, registry, domains, stake manager) -> PrimeNetwork.setModules(...) ->
PrimeNetwork.setStakeMinimum(...) and, when given, setTreasury, setSlashLimits and grantRole(SLASHER_ROLE, ...)
(when the deployer is also the federator; otherwise the federator does these itself).

Slashing is off on a fresh deployment (no treasury, zero caps, no slasher): a deployment only slashes once its
federator has chosen where the tokens go, how much one key may take, and which key that is.
"""

from __future__ import annotations

from collections.abc import Callable

from eth_account.signers.local import LocalAccount

from primenet.chain.artifacts import load_artifact
from primenet.chain.contracts import Network, SlashLimits
from primenet.chain.deployment import Deployment
from primenet.chain.errors import ChainError
from primenet.chain.roles import SLASHER_ROLE
from primenet.chain.rpc import Web3, checksum
from primenet.chain.tx import Transactor

DEFAULT_UNBONDING_PERIOD_S = 7 * 24 * 3600
DEFAULT_STAKE_MINIMUM = 10**18  # one token per compute unit


async def is_live(w3: Web3, deployment: Deployment) -> bool:
    """Whether `deployment` exists on this chain: same chain id and code at every address (a fresh Anvil
    after a restart has none, which makes a recorded deployment stale)."""
    if deployment.chain_id != await w3.eth.chain_id:
        return False
    for address in deployment.contracts.values():
        if not await w3.eth.get_code(checksum(address)):
            return False
    return True


async def deploy(
    w3: Web3,
    deployer: LocalAccount,
    *,
    federator: str | None = None,
    validator: str | None = None,
    unbonding_period_s: int = DEFAULT_UNBONDING_PERIOD_S,
    stake_minimum: int = DEFAULT_STAKE_MINIMUM,
    treasury: str | None = None,
    slash_limits: SlashLimits | None = None,
    slasher: str | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> Deployment:
    """Deploy and wire a fresh set of contracts; `federator` and `validator` default to the deployer.

    `treasury`, `slash_limits` and `slasher` (SLASHER_ROLE) are set only when given, and only when the deployer is
    the federator (the one account allowed to); each left unset keeps slashing refused.
    """
    tx = Transactor(w3, deployer)
    federator = checksum(federator or deployer.address)
    validator = checksum(validator or deployer.address)
    addresses: dict[str, str] = {}
    first_block = await w3.eth.block_number + 1

    async def create(name: str, *args: object) -> str:
        artifact = load_artifact(name)
        receipt = await tx.deploy(artifact.abi, artifact.bytecode, *args)
        address = receipt["contractAddress"]
        if address is None:
            raise ChainError(f"deploying {name} produced no contract address")
        addresses[name] = str(address)
        progress(f"{name} deployed at {address}")
        return str(address)

    token = await create("AIToken", "AI Token", "AI")
    network = await create("PrimeNetwork", federator, validator, token)
    registry = await create("ComputeRegistry", network)
    domains = await create("DomainRegistry", network)
    stake = await create("StakeManager", network, token, unbonding_period_s)
    pool = await create("ComputePool", network, registry, domains, stake)

    deployment = Deployment(
        chain_id=await w3.eth.chain_id,
        block=first_block,
        deployer=deployer.address,
        federator=federator,
        validator=validator,
        contracts=addresses,
        unbonding_period_s=unbonding_period_s,
        stake_minimum=stake_minimum,
    )
    bound = Network(w3, deployment)
    await tx.send(bound.prime.functions.setModules(registry, domains, stake, pool))
    progress("modules wired (PrimeNetwork.setModules)")
    if federator == deployer.address:
        await bound.set_stake_minimum(tx, stake_minimum)
        progress(f"stake minimum set to {stake_minimum} per compute unit")
        if treasury is not None:
            await bound.set_treasury(tx, treasury)
            progress(f"treasury set to {checksum(treasury)}")
        if slash_limits is not None:
            await bound.set_slash_limits(tx, slash_limits)
            progress(f"slash limits set: {slash_limits}")
        if slasher is not None:
            await bound.grant_role(tx, SLASHER_ROLE, slasher)
            progress(f"SLASHER_ROLE granted to {checksum(slasher)}")
    else:
        progress(f"the federator {federator} must set the stake minimum (primenet chain set-min-stake)")
        if treasury is not None or slash_limits is not None or slasher is not None:
            progress(f"the federator {federator} must set the treasury, the slash limits and the slasher")
    return deployment
