"""`primenet chain ...`: deploy the contracts and run the operator's admin operations.

Keys come from a 0600 file (--key-file / PRIMENET_KEY_FILE), else PRIMENET_PRIVATE_KEY, never from an argument.
Amounts of AI tokens and ETH are decimal (`1.5`); they are converted to base units (18 decimals) here.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import asdict, dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, TypeVar

import aiohttp
import typer
from eth_account.signers.local import LocalAccount
from rich.table import Table
from web3.types import TxReceipt

from primenet.chain.contracts import Network, SlashLimits
from primenet.chain.deploy import DEFAULT_UNBONDING_PERIOD_S, deploy, is_live
from primenet.chain.deployment import Deployment, DeploymentError
from primenet.chain.errors import ChainError
from primenet.chain.pool_setup import PoolSetup, ensure_pool
from primenet.chain.roles import SLASHER_ROLE
from primenet.chain.rpc import Web3, checksum, connect
from primenet.cli.output import console, fail, progress
from primenet.core.keys import PrivateKeyError, account_from_key, load_key

T = TypeVar("T")
KEY_ENV = "PRIMENET_PRIVATE_KEY"
UNITS = 10**18

chain_app = typer.Typer(
    help="Deploy the contracts and run admin operations (mint, whitelist, domains, pools, ejection, slashing).",
    no_args_is_help=True,
)


@dataclass
class ChainOptions:
    rpc_url: str
    deployment: Path
    key_file: Path | None


@chain_app.callback()
def options(
    ctx: typer.Context,
    rpc_url: Annotated[str, typer.Option(envvar="PRIMENET_RPC_URL", help="JSON-RPC endpoint of the chain.")] = (
        "http://127.0.0.1:8545"
    ),
    deployment: Annotated[
        Path, typer.Option(envvar="PRIMENET_DEPLOYMENT", help="Deployment file (addresses); the devnet's by default.")
    ] = Path(".devnet/deployment.json"),
    key_file: Annotated[
        Path | None,
        typer.Option(envvar="PRIMENET_KEY_FILE", help=f"Private key file (mode 0600); else ${KEY_ENV} is used."),
    ] = None,
) -> None:
    ctx.obj = ChainOptions(rpc_url=rpc_url, deployment=deployment, key_file=key_file)


AsJson = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def tokens(text: str) -> int:
    """A decimal amount of 18-decimal units (AI or ETH) -> base units."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise typer.BadParameter(f"{text!r} is not a number") from None
    base = value * UNITS
    if value < 0 or base != base.to_integral_value():
        raise typer.BadParameter(f"{text!r} must be non-negative with at most 18 decimals")
    return int(base)


def address(text: str) -> str:
    try:
        return checksum(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an Ethereum address") from None


def address_argument(help_text: str) -> Any:
    return typer.Argument(parser=address, metavar="ADDRESS", help=help_text)


def address_option(help_text: str) -> Any:
    return typer.Option(parser=address, metavar="ADDRESS", help=help_text)


Amount = Annotated[int, typer.Argument(parser=tokens, metavar="AMOUNT", help="Decimal amount, e.g. 100 or 0.5.")]


def _signer(opts: ChainOptions) -> LocalAccount:
    return account_from_key(load_key(KEY_ENV, opts.key_file))


def _run(opts: ChainOptions, work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run `work`, turning every expected failure into a message: 1 = refused, 2 = could not run."""
    try:
        return asyncio.run(work())
    except ChainError as exc:
        fail(str(exc), 1)
    except (PrivateKeyError, DeploymentError, FileNotFoundError) as exc:
        fail(str(exc), 2)
    except (aiohttp.ClientError, OSError) as exc:
        fail(f"cannot reach the chain at {opts.rpc_url}: {exc}", 2)


def _with_network(opts: ChainOptions, work: Callable[[Network], Awaitable[T]]) -> T:
    async def connected() -> T:
        async with Network.connect(opts.rpc_url, Deployment.load(opts.deployment)) as network:
            await network.check_chain()
            return await work(network)

    return _run(opts, connected)


def _receipt(receipt: TxReceipt, **extra: Any) -> dict[str, Any]:
    return {"tx": "0x" + receipt["transactionHash"].hex().removeprefix("0x"), "block": receipt["blockNumber"], **extra}


def _print(result: dict[str, Any], as_json: bool, title: str) -> None:
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
        return
    table = Table(title=title, show_header=False)
    for key, value in result.items():
        table.add_row(key, str(value))
    console.print(table)


def _send(
    ctx: typer.Context, as_json: bool, title: str, action: Callable[[Network, LocalAccount], Awaitable[dict[str, Any]]]
) -> None:
    opts: ChainOptions = ctx.obj

    async def work(network: Network) -> dict[str, Any]:
        return await action(network, _signer(opts))

    _print(_with_network(opts, work), as_json, title)


# --- deploy ----------------------------------------------------------------------------------------


UnbondingPeriod = Annotated[int, typer.Option(min=0, help="Seconds from reclaiming stake to withdrawing it.")]
StakeMinimum = Annotated[int, typer.Option(parser=tokens, metavar="AMOUNT", help="Stake per compute unit, in AI.")]
# In AI, not base units: click passes a default through the option's parser as if it had been typed.
DEFAULT_STAKE_AI = 1


async def _deploy_unless_live(
    w3: Web3,
    opts: ChainOptions,
    *,
    force: bool = False,
    federator: str | None = None,
    validator: str | None = None,
    unbonding_period: int,
    stake_minimum: int,
) -> tuple[Deployment, bool]:
    """The recorded deployment when it is live on this chain (and not `force`), else a new one: (it, is new)."""
    if not force and opts.deployment.exists():
        recorded = Deployment.load(opts.deployment)
        if await is_live(w3, recorded):
            return recorded, False
    made = await deploy(
        w3,
        _signer(opts),
        federator=federator,
        validator=validator,
        unbonding_period_s=unbonding_period,
        stake_minimum=stake_minimum,
        progress=progress,
    )
    return made, True


@chain_app.command("deploy")
def deploy_command(
    ctx: typer.Context,
    federator: Annotated[str | None, address_option("FEDERATOR_ROLE holder (default: you).")] = None,
    validator: Annotated[str | None, address_option("VALIDATOR_ROLE holder (default: you).")] = None,
    unbonding_period: UnbondingPeriod = DEFAULT_UNBONDING_PERIOD_S,
    stake_minimum: StakeMinimum = DEFAULT_STAKE_AI,
    force: Annotated[bool, typer.Option(help="Deploy anew even if the deployment file is live on this chain.")] = False,
    as_json: AsJson = False,
) -> None:
    """Deploy and wire all contracts (signed by the deployer key) and write the deployment file.

    Run again against the same chain, it reports the existing deployment instead of deploying twice.
    """
    opts: ChainOptions = ctx.obj

    async def work() -> tuple[Deployment, bool]:
        w3 = connect(opts.rpc_url)
        try:
            return await _deploy_unless_live(
                w3,
                opts,
                force=force,
                federator=federator,
                validator=validator,
                unbonding_period=unbonding_period,
                stake_minimum=stake_minimum,
            )
        finally:
            await w3.provider.disconnect()

    deployment, fresh = _run(opts, work)
    if fresh:
        deployment.save(opts.deployment)
    if as_json:
        typer.echo(json.dumps({"deployed": fresh, "file": str(opts.deployment), **deployment.model_dump()}, indent=2))
        return
    verb = "Deployed" if fresh else "Already deployed on this chain (nothing sent; --force deploys anew)"
    console.print(f"{verb}: chain {deployment.chain_id}, block {deployment.block}, file {opts.deployment}")
    for name, contract in deployment.contracts.items():
        console.print(f"  {name:16} {contract}")


@chain_app.command("bootstrap")
def bootstrap_command(
    ctx: typer.Context,
    validator: Annotated[str, address_option("VALIDATOR_ROLE holder (the validator service's address).")],
    manager: Annotated[str, address_option("Compute manager of the pool (the orchestrator's address).")],
    domain_name: Annotated[str, typer.Option(help="Name of the domain the pool belongs to.")] = "primenet",
    pool_name: Annotated[str, typer.Option(help="Name of the pool.")] = "primenet pool",
    requirements: Annotated[str, typer.Option(help="Node requirements string stored with the pool.")] = "",
    unbonding_period: UnbondingPeriod = DEFAULT_UNBONDING_PERIOD_S,
    stake_minimum: StakeMinimum = DEFAULT_STAKE_AI,
    as_json: AsJson = False,
) -> None:
    """A coordinator's chain in one step: the contracts, a domain and an ACTIVE pool managed by --manager.

    The deployer key becomes the federator. Idempotent: contracts already live at the deployment file's addresses
    are reused, and so is a pool of that name and manager. With --json, the last line of stdout is one JSON
    object (deployed, pool_created, domain_id, pool_id, file, deployment), which a deployment tool can parse.
    """
    opts: ChainOptions = ctx.obj

    async def work() -> tuple[Deployment, bool, PoolSetup]:
        w3 = connect(opts.rpc_url)
        try:
            deployment, fresh = await _deploy_unless_live(
                w3, opts, validator=validator, unbonding_period=unbonding_period, stake_minimum=stake_minimum
            )
            if fresh:
                deployment.save(opts.deployment)  # before the pool: a failure there keeps the contracts
            setup = await ensure_pool(
                Network(w3, deployment),
                _signer(opts),
                manager=manager,
                domain_name=domain_name,
                pool_name=pool_name,
                requirements=requirements,
            )
            return deployment, fresh, setup
        finally:
            await w3.provider.disconnect()

    deployment, fresh, setup = _run(opts, work)
    result = {
        "deployed": fresh,
        "pool_created": setup.created,
        "domain_id": setup.domain_id,
        "pool_id": setup.pool_id,
        "file": str(opts.deployment),
        "deployment": deployment.model_dump(),
    }
    if as_json:
        typer.echo(json.dumps(result))
        return
    verb = "Deployed" if fresh else "Reused the live deployment"
    console.print(f"{verb}: chain {deployment.chain_id}, file {opts.deployment}")
    made = "created" if setup.created else "already there"
    console.print(f"Pool {setup.pool_id} in domain {setup.domain_id} ({made}), managed by {manager}: ACTIVE")


# --- operator actions ------------------------------------------------------------------------------


@chain_app.command()
def mint(
    ctx: typer.Context,
    to: Annotated[str, address_argument("Recipient address.")],
    amount: Amount,
    as_json: AsJson = False,
) -> None:
    """Mint AI tokens (key: a MINTER_ROLE holder, the deployer by default)."""

    async def action(network: Network, key: LocalAccount) -> dict[str, Any]:
        receipt = await network.mint(network.transactor(key), to, amount)
        return _receipt(receipt, to=to, amount=amount, balance=await network.balance(to))

    _send(ctx, as_json, "minted", action)


@chain_app.command("set-min-stake")
def set_min_stake(ctx: typer.Context, amount: Amount, as_json: AsJson = False) -> None:
    """Set the stake required per compute unit, in AI (key: federator)."""

    async def action(network: Network, key: LocalAccount) -> dict[str, Any]:
        receipt = await network.set_stake_minimum(network.transactor(key), amount)
        return _receipt(receipt, stake_minimum=amount)

    _send(ctx, as_json, "stake minimum set", action)


@chain_app.command("whitelist-provider")
def whitelist_provider(
    ctx: typer.Context,
    provider: Annotated[str, address_argument("Provider address.")],
    as_json: AsJson = False,
) -> None:
    """Whitelist a registered provider so that it may add nodes (key: federator or validator)."""

    async def action(network: Network, key: LocalAccount) -> dict[str, Any]:
        receipt = await network.whitelist_provider(network.transactor(key), provider)
        return _receipt(receipt, provider=provider)

    _send(ctx, as_json, "provider whitelisted", action)


@chain_app.command("create-domain")
def create_domain(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Domain name, e.g. inference.")],
    parameters_uri: Annotated[str, typer.Option(help="Where the domain's parameters live.")] = "",
    as_json: AsJson = False,
) -> None:
    """Create a compute domain (key: federator)."""

    async def action(network: Network, key: LocalAccount) -> dict[str, Any]:
        domain_id = await network.create_domain(network.transactor(key), name, parameters_uri)
        return {"domain_id": domain_id, "name": name}

    _send(ctx, as_json, "domain created", action)


@chain_app.command("create-pool")
def create_pool(
    ctx: typer.Context,
    domain: Annotated[int, typer.Option(min=0, help="Domain id.")],
    manager: Annotated[str, address_option("Compute manager (the orchestrator's address).")],
    name: Annotated[str, typer.Option(help="Pool name.")],
    requirements: Annotated[str, typer.Option(help="Node requirements string stored with the pool.")] = "",
    compute_limit: Annotated[int, typer.Option(min=0, help="Max total compute units (0: unlimited).")] = 0,
    as_json: AsJson = False,
) -> None:
    """Create a compute pool in PENDING state (key: federator); `start-pool` opens it."""

    async def action(network: Network, key: LocalAccount) -> dict[str, Any]:
        pool_id = await network.create_pool(
            network.transactor(key),
            domain_id=domain,
            manager=manager,
            name=name,
            data_uri=requirements,
            compute_limit=compute_limit,
        )
        return {"pool_id": pool_id, "domain_id": domain, "manager": manager}

    _send(ctx, as_json, "pool created", action)


@chain_app.command("start-pool")
def start_pool(
    ctx: typer.Context, pool: Annotated[int, typer.Argument(min=0, help="Pool id.")], as_json: AsJson = False
) -> None:
    """Open a pool for joining (key: the pool's creator or compute manager)."""

    async def action(network: Network, key: LocalAccount) -> dict[str, Any]:
        receipt = await network.start_pool(network.transactor(key), pool)
        return _receipt(receipt, pool_id=pool, status=(await network.pool(pool)).status.name)

    _send(ctx, as_json, "pool started", action)


@chain_app.command("eject-node")
def eject_node(
    ctx: typer.Context,
    pool: Annotated[int, typer.Argument(min=0, help="Pool id.")],
    node: Annotated[str, address_argument("Node address.")],
    as_json: AsJson = False,
) -> None:
    """Remove a node from a pool; it may rejoin with a new invite (key: creator or compute manager)."""

    async def action(network: Network, key: LocalAccount) -> dict[str, Any]:
        receipt = await network.eject_node(network.transactor(key), pool, node)
        return _receipt(receipt, pool_id=pool, node=node)

    _send(ctx, as_json, "node ejected", action)


@chain_app.command("blacklist-node")
def blacklist_node(
    ctx: typer.Context,
    pool: Annotated[int, typer.Argument(min=0, help="Pool id.")],
    node: Annotated[str, address_argument("Node address.")],
    as_json: AsJson = False,
) -> None:
    """Bar a node from a pool for good, ejecting it if present (key: creator or compute manager)."""

    async def action(network: Network, key: LocalAccount) -> dict[str, Any]:
        receipt = await network.blacklist_node(network.transactor(key), pool, node)
        return _receipt(receipt, pool_id=pool, node=node)

    _send(ctx, as_json, "node blacklisted", action)


# --- slashing --------------------------------------------------------------------------------------


@chain_app.command("set-treasury")
def set_treasury(
    ctx: typer.Context,
    treasury: Annotated[str, address_argument("Account that receives slashed stake.")],
    as_json: AsJson = False,
) -> None:
    """Set where slashed stake goes; slashing is refused until this is set (key: federator)."""

    async def action(network: Network, key: LocalAccount) -> dict[str, Any]:
        receipt = await network.set_treasury(network.transactor(key), treasury)
        return _receipt(receipt, treasury=treasury)

    _send(ctx, as_json, "treasury set", action)


@chain_app.command("set-slash-limits")
def set_slash_limits(
    ctx: typer.Context,
    per_call: Annotated[int, typer.Option(parser=tokens, metavar="AMOUNT", help="Most one slash may take, in AI.")],
    per_provider: Annotated[
        int, typer.Option(parser=tokens, metavar="AMOUNT", help="Most one provider may lose per period, in AI.")
    ],
    per_network: Annotated[
        int, typer.Option(parser=tokens, metavar="AMOUNT", help="Most all providers may lose per period, in AI.")
    ],
    period: Annotated[int, typer.Option(min=1, help="Period length in seconds (at most 365 days).")] = 24 * 3600,
    as_json: AsJson = False,
) -> None:
    """Cap slashing per call, per provider per period and per network per period; 0 refuses (key: federator)."""
    limits = SlashLimits(
        per_call=per_call, per_provider_per_period=per_provider, per_network_per_period=per_network, period_s=period
    )

    async def action(network: Network, key: LocalAccount) -> dict[str, Any]:
        receipt = await network.set_slash_limits(network.transactor(key), limits)
        return _receipt(receipt, **asdict(limits))

    _send(ctx, as_json, "slash limits set", action)


@chain_app.command("grant-slasher")
def grant_slasher(
    ctx: typer.Context,
    account: Annotated[str, address_argument("Account to receive SLASHER_ROLE.")],
    revoke: Annotated[bool, typer.Option("--revoke", help="Take the role away instead.")] = False,
    as_json: AsJson = False,
) -> None:
    """Grant (or with --revoke, revoke) SLASHER_ROLE, the one role that may slash (key: federator)."""

    async def action(network: Network, key: LocalAccount) -> dict[str, Any]:
        change = network.revoke_role if revoke else network.grant_role
        receipt = await change(network.transactor(key), SLASHER_ROLE, account)
        return _receipt(receipt, account=account, slasher=await network.is_slasher(account))

    _send(ctx, as_json, "SLASHER_ROLE revoked" if revoke else "SLASHER_ROLE granted", action)


@chain_app.command()
def slash(
    ctx: typer.Context,
    provider: Annotated[str, address_argument("Provider to slash.")],
    amount: Amount,
    reason: Annotated[str, typer.Option(help="Why (1-1024 bytes of UTF-8); recorded in the events.")],
    as_json: AsJson = False,
) -> None:
    """Take stake from a provider for the treasury, within the caps (key: a SLASHER_ROLE holder)."""

    async def action(network: Network, key: LocalAccount) -> dict[str, Any]:
        taken = await network.slash(network.transactor(key), provider, amount, reason.encode())
        return {
            "provider": provider,
            "slashed": taken,
            "treasury": await network.treasury(),
            "stake_left": await network.stake_of(provider),
            "allowance_left": await network.slash_allowance(provider),
        }

    _send(ctx, as_json, "slashed", action)


@chain_app.command("slash-info")
def slash_info(
    ctx: typer.Context,
    provider: Annotated[str | None, address_option("Also show what one slash of this provider may take now.")] = None,
    as_json: AsJson = False,
) -> None:
    """The treasury, the slash limits, the SLASHER_ROLE holders and, with --provider, its allowance."""

    async def read(network: Network) -> dict[str, Any]:
        slashers = await network.role_members(SLASHER_ROLE)
        result = {"treasury": await network.treasury(), **asdict(await network.slash_limits()), "slashers": slashers}
        if provider is not None:
            result["provider"] = provider
            result["allowance"] = await network.slash_allowance(provider)
        return result

    _print(_with_network(ctx.obj, read), as_json, "slashing")


@chain_app.command()
def fund(
    ctx: typer.Context,
    to: Annotated[str, address_argument("Recipient address.")],
    amount: Amount,
    as_json: AsJson = False,
) -> None:
    """Send ETH for gas (key: any funded account)."""

    async def action(network: Network, key: LocalAccount) -> dict[str, Any]:
        receipt = await network.transactor(key).transfer(to, amount)
        return _receipt(receipt, to=to, wei=amount, balance_wei=await network.w3.eth.get_balance(checksum(to)))

    _send(ctx, as_json, "funded", action)


# --- reads -----------------------------------------------------------------------------------------


@chain_app.command("node-info")
def node_info(
    ctx: typer.Context,
    node: Annotated[str, address_argument("Node address.")],
    as_json: AsJson = False,
) -> None:
    """A node's on-chain record and pool (exit 1 when the node is unknown)."""

    async def read(network: Network) -> dict[str, Any] | None:
        record = await network.node(node)
        if record is None:
            return None
        return {**asdict(record), "pool_id": await network.node_pool(node)}

    result = _with_network(ctx.obj, read)
    if result is None:
        fail(f"node {node} is not registered on chain", 1)
    _print(result, as_json, f"node {node}")


@chain_app.command("pool-info")
def pool_info(
    ctx: typer.Context, pool: Annotated[int, typer.Argument(min=0, help="Pool id.")], as_json: AsJson = False
) -> None:
    """A pool's record and its nodes."""

    async def read(network: Network) -> dict[str, Any]:
        if pool >= await network.pool_count():
            raise ChainError(f"pool {pool} does not exist")
        info = await network.pool(pool)
        return {**asdict(info), "status": info.status.name, "nodes": await network.pool_nodes(pool)}

    _print(_with_network(ctx.obj, read), as_json, f"pool {pool}")
