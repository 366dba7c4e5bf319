"""Typed bindings over the deployed contracts: reads return dataclasses, writes go through a `Transactor`.

`Network` is what services and the CLI hold: one web3 connection and the six contracts of one deployment.
Each write method names the role that may call it; the contract enforces it, and a refusal arrives as a
decoded `ContractRevertError` (e.g. `AccessControlUnauthorizedAccount`, `InviteExpired`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from web3.contract import AsyncContract
from web3.contract.async_contract import AsyncContractFunction
from web3.logs import DISCARD
from web3.types import TxReceipt

from primenet.chain.artifacts import load_artifact
from primenet.chain.deployment import Deployment
from primenet.chain.eip712 import PoolInvite, digest, node_key_message, sign
from primenet.chain.errors import ChainError
from primenet.chain.roles import FEDERATOR_ROLE, SLASHER_ROLE, VALIDATOR_ROLE
from primenet.chain.rpc import Web3, checksum, connect
from primenet.chain.tx import Transactor, read


class PoolStatus(enum.IntEnum):
    PENDING = 0
    ACTIVE = 1
    COMPLETED = 2


@dataclass(frozen=True)
class NodeInfo:
    node: str
    provider: str
    specs_uri: str
    compute_units: int
    is_active: bool
    is_validated: bool


@dataclass(frozen=True)
class ProviderInfo:
    provider: str
    is_registered: bool
    is_whitelisted: bool
    node_count: int
    active_nodes: int
    total_compute: int
    stake: int


@dataclass(frozen=True)
class PoolInfo:
    pool_id: int
    domain_id: int
    name: str
    creator: str
    compute_manager: str
    creation_time: int
    start_time: int
    end_time: int
    data_uri: str
    total_compute: int
    compute_limit: int
    node_count: int
    status: PoolStatus


@dataclass(frozen=True)
class SlashLimits:
    """What slashing may take, in token base units; a cap of 0 refuses every slash (the state at deployment).

    The per-period caps count what was taken in a window that opens with the first slash after the previous
    window ended and lasts `period_s` seconds: one window per provider and one for the whole network.
    """

    per_call: int
    per_provider_per_period: int
    per_network_per_period: int
    period_s: int


@dataclass(frozen=True)
class DomainInfo:
    domain_id: int
    name: str
    parameters_uri: str


class Network:
    """The contracts of one deployment on one chain."""

    def __init__(self, w3: Web3, deployment: Deployment) -> None:
        self.w3 = w3
        self.deployment = deployment
        self.chain_id = deployment.chain_id

        def bind(name: str) -> AsyncContract:
            return w3.eth.contract(address=checksum(deployment.address(name)), abi=load_artifact(name).abi)

        self.token = bind("AIToken")
        self.prime = bind("PrimeNetwork")
        self.registry = bind("ComputeRegistry")
        self.domains = bind("DomainRegistry")
        self.stake_manager = bind("StakeManager")
        self.pools = bind("ComputePool")

    @classmethod
    def connect(cls, rpc_url: str, deployment: Deployment) -> Network:
        return cls(connect(rpc_url), deployment)

    async def aclose(self) -> None:
        """Close the HTTP session under the web3 provider."""
        await self.w3.provider.disconnect()

    async def __aenter__(self) -> Network:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    def transactor(self, account: LocalAccount) -> Transactor:
        return Transactor(self.w3, account)

    async def check_chain(self) -> None:
        """Refuse to work against a chain other than the deployment's (a wrong RPC URL)."""
        actual = await self.w3.eth.chain_id
        if actual != self.chain_id:
            raise ChainError(f"the RPC endpoint serves chain {actual}, the deployment is on chain {self.chain_id}")

    @staticmethod
    def events(contract: AsyncContract, event: str, receipt: TxReceipt) -> list[dict[str, Any]]:
        """The named event's arguments, from one receipt."""
        logs = contract.events[event]().process_receipt(receipt, errors=DISCARD)
        return [dict(log["args"]) for log in logs]

    async def chain_time(self) -> int:
        """The latest block's timestamp: what expiries are checked against on chain (not this host's clock,
        which may differ, e.g. on a devnet whose time was advanced)."""
        block = await self.w3.eth.get_block("latest")
        return int(block["timestamp"])

    # --- token -------------------------------------------------------------------------------------

    async def balance(self, address: str) -> int:
        value: int = await read(self.token.functions.balanceOf(checksum(address)))
        return value

    async def mint(self, minter: Transactor, to: str, amount: int) -> TxReceipt:
        """MINTER_ROLE."""
        return await minter.send(self.token.functions.mint(checksum(to), amount))

    async def approve_stake(self, owner: Transactor, amount: int) -> TxReceipt | None:
        """Let PrimeNetwork pull `amount` of the owner's tokens; skipped when the allowance already covers it."""
        allowance: int = await read(self.token.functions.allowance(owner.address, self.prime.address))
        if allowance >= amount:
            return None
        return await owner.send(self.token.functions.approve(self.prime.address, amount))

    # --- roles -------------------------------------------------------------------------------------

    async def has_role(self, role: bytes, address: str) -> bool:
        answer: bool = await read(self.prime.functions.hasRole(role, checksum(address)))
        return answer

    async def is_validator(self, address: str) -> bool:
        return await self.has_role(VALIDATOR_ROLE, address)

    async def is_federator(self, address: str) -> bool:
        return await self.has_role(FEDERATOR_ROLE, address)

    async def role_members(self, role: bytes) -> list[str]:
        """Every holder of `role` on PrimeNetwork (it is AccessControlEnumerable)."""
        members: list[str] = await read(self.prime.functions.getRoleMembers(role))
        return members

    async def is_slasher(self, address: str) -> bool:
        return await self.has_role(SLASHER_ROLE, address)

    async def grant_role(self, admin: Transactor, role: bytes, account: str) -> TxReceipt:
        """The role's admin: FEDERATOR_ROLE for VALIDATOR_ROLE and SLASHER_ROLE."""
        return await admin.send(self.prime.functions.grantRole(role, checksum(account)))

    async def revoke_role(self, admin: Transactor, role: bytes, account: str) -> TxReceipt:
        return await admin.send(self.prime.functions.revokeRole(role, checksum(account)))

    # --- federator ---------------------------------------------------------------------------------

    async def set_stake_minimum(self, federator: Transactor, per_compute_unit: int) -> TxReceipt:
        return await federator.send(self.prime.functions.setStakeMinimum(per_compute_unit))

    async def set_unbonding_period(self, federator: Transactor, seconds: int) -> TxReceipt:
        return await federator.send(self.prime.functions.setUnbondingPeriod(seconds))

    async def set_treasury(self, federator: Transactor, treasury: str) -> TxReceipt:
        """Where slashed stake goes (not zero, not a contract of this deployment)."""
        return await federator.send(self.prime.functions.setTreasury(checksum(treasury)))

    async def set_slash_limits(self, federator: Transactor, limits: SlashLimits) -> TxReceipt:
        """`limits.period_s` must be 1..365 days (`InvalidSlashPeriod` otherwise)."""
        call = self.prime.functions.setSlashLimits(
            limits.per_call, limits.per_provider_per_period, limits.per_network_per_period, limits.period_s
        )
        return await federator.send(call)

    async def create_domain(self, federator: Transactor, name: str, parameters_uri: str = "") -> int:
        receipt = await federator.send(self.prime.functions.createDomain(name, parameters_uri))
        (event,) = self.events(self.prime, "DomainCreated", receipt)
        return int(event["domainId"])

    async def create_pool(
        self,
        federator: Transactor,
        *,
        domain_id: int,
        manager: str,
        name: str,
        data_uri: str = "",
        compute_limit: int = 0,
    ) -> int:
        """FEDERATOR_ROLE; `data_uri` carries the pool's node requirements string."""
        call = self.pools.functions.createComputePool(domain_id, checksum(manager), name, data_uri, compute_limit)
        receipt = await federator.send(call)
        (event,) = self.events(self.pools, "ComputePoolCreated", receipt)
        return int(event["poolId"])

    # --- federator or validator ----------------------------------------------------------------------

    async def whitelist_provider(self, sender: Transactor, provider: str) -> TxReceipt:
        return await sender.send(self.prime.functions.whitelistProvider(checksum(provider)))

    async def blacklist_provider(self, sender: Transactor, provider: str) -> TxReceipt:
        return await sender.send(self.prime.functions.blacklistProvider(checksum(provider)))

    # --- validator ---------------------------------------------------------------------------------

    async def validate_node(self, validator: Transactor, provider: str, node: str) -> TxReceipt:
        return await validator.send(self.prime.functions.validateNode(checksum(provider), checksum(node)))

    async def invalidate_node(self, validator: Transactor, provider: str, node: str) -> TxReceipt:
        return await validator.send(self.prime.functions.invalidateNode(checksum(provider), checksum(node)))

    # --- slasher -----------------------------------------------------------------------------------

    async def slash(self, slasher: Transactor, provider: str, amount: int, reason: bytes) -> int:
        """SLASHER_ROLE. Takes up to `amount` of the provider's stake for the treasury; returns what was taken.

        Refusals arrive decoded: `AccessControlUnauthorizedAccount` (not a slasher, e.g. a validator key),
        `TreasuryNotSet`, `InvalidSlashReason` (empty or over 1024 bytes), `SlashExceedsCallCap`,
        `SlashExceedsProviderPeriodCap`, `SlashExceedsNetworkPeriodCap`, `ProviderNotRegistered`.
        """
        receipt = await slasher.send(self.prime.functions.slash(checksum(provider), amount, reason))
        (event,) = self.events(self.prime, "ProviderSlashed", receipt)
        return int(event["amount"])

    # --- pool creator or compute manager -----------------------------------------------------------

    async def start_pool(self, sender: Transactor, pool_id: int) -> TxReceipt:
        return await sender.send(self.pools.functions.startComputePool(pool_id))

    async def end_pool(self, sender: Transactor, pool_id: int) -> TxReceipt:
        return await sender.send(self.pools.functions.endComputePool(pool_id))

    async def eject_node(self, sender: Transactor, pool_id: int, node: str) -> TxReceipt:
        return await sender.send(self.pools.functions.ejectNode(pool_id, checksum(node)))

    async def blacklist_node(self, sender: Transactor, pool_id: int, node: str) -> TxReceipt:
        return await sender.send(self.pools.functions.blacklistNode(pool_id, checksum(node)))

    async def invite_nonce_used(self, pool_id: int, nonce: int) -> bool:
        used: bool = await read(self.pools.functions.isInviteNonceUsed(pool_id, nonce))
        return used

    def sign_invite(self, manager: LocalAccount, invite: PoolInvite) -> bytes:
        return sign(manager, invite.message(chain_id=self.chain_id, compute_pool=self.pools.address))

    # --- provider ----------------------------------------------------------------------------------

    async def register_provider(self, provider: Transactor, stake: int) -> TxReceipt:
        """Approve the stake (when needed) and register; the provider then waits to be whitelisted."""
        await self.approve_stake(provider, stake)
        return await provider.send(self.prime.functions.registerProvider(stake))

    async def increase_stake(self, provider: Transactor, amount: int) -> TxReceipt:
        await self.approve_stake(provider, amount)
        return await provider.send(self.prime.functions.increaseStake(amount))

    async def reclaim_stake(self, provider: Transactor, amount: int) -> TxReceipt:
        """Move `amount` of stake above the minimum into unbonding; `withdraw` pays it after the period."""
        return await provider.send(self.prime.functions.reclaimStake(amount))

    async def withdraw(self, provider: Transactor) -> TxReceipt:
        return await provider.send(self.stake_manager.functions.withdraw())

    async def node_key_signature(self, node: LocalAccount, provider: str) -> bytes:
        """The node key's EIP-712 proof that it belongs to `provider`, for the node's next nonce."""
        nonce: int = await read(self.prime.functions.nodeKeyNonce(node.address))
        message = node_key_message(
            chain_id=self.chain_id,
            prime_network=self.prime.address,
            provider=checksum(provider),
            node=node.address,
            nonce=nonce,
        )
        return sign(node, message)

    def add_node_call(self, node: str, specs_uri: str, compute_units: int, signature: bytes) -> AsyncContractFunction:
        return self.prime.functions.addComputeNode(checksum(node), specs_uri, compute_units, signature)

    async def add_node(
        self, provider: Transactor, node: LocalAccount, *, compute_units: int, specs_uri: str = ""
    ) -> TxReceipt:
        signature = await self.node_key_signature(node, provider.address)
        return await provider.send(self.add_node_call(node.address, specs_uri, compute_units, signature))

    async def remove_node(self, sender: Transactor, provider: str, node: str) -> TxReceipt:
        """The provider itself, or a validator."""
        return await sender.send(self.prime.functions.removeComputeNode(checksum(provider), checksum(node)))

    async def join_pool(self, provider: Transactor, invite: PoolInvite, signature: bytes) -> TxReceipt:
        call = self.pools.functions.joinComputePool(
            invite.pool_id, provider.address, checksum(invite.node), invite.nonce, invite.expiry, signature
        )
        return await provider.send(call)

    async def leave_pool(self, provider: Transactor, pool_id: int, node: str) -> TxReceipt:
        return await provider.send(self.pools.functions.leaveComputePool(pool_id, provider.address, checksum(node)))

    # --- reads -------------------------------------------------------------------------------------

    async def minimum_stake(self, provider: str, extra_compute_units: int) -> int:
        """The stake `provider` needs in total to hold its nodes plus `extra_compute_units` more."""
        value: int = await read(self.prime.functions.calculateMinimumStake(checksum(provider), extra_compute_units))
        return value

    async def stake_of(self, address: str) -> int:
        value: int = await read(self.stake_manager.functions.getStake(checksum(address)))
        return value

    async def withdrawable(self, address: str) -> int:
        value: int = await read(self.stake_manager.functions.getWithdrawable(checksum(address)))
        return value

    async def unbonding_period(self) -> int:
        value: int = await read(self.stake_manager.functions.getUnbondingPeriod())
        return value

    async def treasury(self) -> str | None:
        """The treasury slashed stake goes to; None while the federator has not set one (slashing refused)."""
        address: str = await read(self.prime.functions.treasury())
        return None if int(address, 16) == 0 else address

    async def slash_limits(self) -> SlashLimits:
        per_call, per_provider, per_network, period = await read(self.prime.functions.getSlashLimits())
        return SlashLimits(
            per_call=per_call, per_provider_per_period=per_provider, per_network_per_period=per_network, period_s=period
        )

    async def slash_allowance(self, provider: str) -> int:
        """The most one slash of `provider` may ask for now (the caps less what the open windows used)."""
        value: int = await read(self.prime.functions.getSlashAllowance(checksum(provider)))
        return value

    async def stake_minimum(self) -> int:
        value: int = await read(self.stake_manager.functions.getStakeMinimum())
        return value

    async def provider(self, address: str) -> ProviderInfo:
        provider, registered, whitelisted, nodes, active, compute = await read(
            self.registry.functions.getProvider(checksum(address))
        )
        return ProviderInfo(
            provider=provider,
            is_registered=registered,
            is_whitelisted=whitelisted,
            node_count=nodes,
            active_nodes=active,
            total_compute=compute,
            stake=await self.stake_of(address),
        )

    async def node(self, address: str) -> NodeInfo | None:
        """The node's on-chain record, or None when no provider registered it."""
        if not await read(self.registry.functions.nodeExists(checksum(address))):
            return None
        provider, node, specs_uri, compute_units, is_active, is_validated = await read(
            self.registry.functions.getNode(checksum(address))
        )
        return NodeInfo(
            node=node,
            provider=provider,
            specs_uri=specs_uri,
            compute_units=compute_units,
            is_active=is_active,
            is_validated=is_validated,
        )

    async def pool(self, pool_id: int) -> PoolInfo:
        (
            pool,
            domain,
            name,
            creator,
            manager,
            created,
            started,
            ended,
            uri,
            compute,
            limit,
            nodes,
            status,
        ) = await read(self.pools.functions.getComputePool(pool_id))
        return PoolInfo(
            pool_id=pool,
            domain_id=domain,
            name=name,
            creator=creator,
            compute_manager=manager,
            creation_time=created,
            start_time=started,
            end_time=ended,
            data_uri=uri,
            total_compute=compute,
            compute_limit=limit,
            node_count=nodes,
            status=PoolStatus(status),
        )

    async def pool_count(self) -> int:
        value: int = await read(self.pools.functions.poolCount())
        return value

    async def pool_nodes(self, pool_id: int) -> list[str]:
        nodes: list[str] = await read(self.pools.functions.getComputePoolNodes(pool_id))
        return nodes

    async def is_node_in_pool(self, pool_id: int, node: str) -> bool:
        answer: bool = await read(self.pools.functions.isNodeInPool(pool_id, checksum(node)))
        return answer

    async def node_pool(self, node: str) -> int | None:
        in_pool, pool_id = await read(self.pools.functions.getNodePool(checksum(node)))
        return int(pool_id) if in_pool else None

    async def domain(self, domain_id: int) -> DomainInfo:
        return DomainInfo(*await read(self.domains.functions.get(domain_id)))

    async def domain_count(self) -> int:
        value: int = await read(self.domains.functions.count())
        return value

    # --- digests as the contracts compute them (for tests and diagnostics) -------------------------

    async def onchain_node_key_digest(self, provider: str, node: str, nonce: int) -> bytes:
        value: bytes = await read(self.prime.functions.hashNodeKey(checksum(provider), checksum(node), nonce))
        return value

    async def onchain_invite_digest(self, invite: PoolInvite) -> bytes:
        value: bytes = await read(
            self.pools.functions.hashPoolInvite(
                invite.domain_id, invite.pool_id, checksum(invite.node), invite.nonce, invite.expiry
            )
        )
        return value

    def invite_digest(self, invite: PoolInvite) -> bytes:
        return digest(invite.message(chain_id=self.chain_id, compute_pool=self.pools.address))
