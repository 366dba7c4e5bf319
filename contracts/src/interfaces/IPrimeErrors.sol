// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title Custom errors shared by every primenet contract
/// @notice Every primenet contract inherits this interface so that each ABI lists the complete error set:
/// an error raised by a module bubbles up unchanged through PrimeNetwork, and the Python client can decode
/// it with the ABI of whichever contract it called. Role checks use OpenZeppelin's
/// `AccessControlUnauthorizedAccount(address account, bytes32 neededRole)`; token transfers may bubble up
/// OpenZeppelin's ERC20 errors (listed in the AIToken ABI), e.g. `ERC20InsufficientAllowance`.
interface IPrimeErrors {
    // --- wiring and callers ---

    /// A zero address was given where a real one is required.
    error ZeroAddress();
    /// PrimeNetwork has not been given its modules yet (`setModules`).
    error NotWired();
    /// `setModules` (or `ComputeRegistry.setComputePool`) was already called.
    error AlreadyWired();
    /// A module passed to `setModules` is not bound to this deployment (other PrimeNetwork, token or sibling).
    error ModuleMismatch(address module);
    /// Only the PrimeNetwork contract may call this module function.
    error CallerNotPrimeNetwork(address caller);
    /// Only the ComputePool contract may call this registry function.
    error CallerNotComputePool(address caller);
    /// The caller holds neither FEDERATOR_ROLE nor VALIDATOR_ROLE on PrimeNetwork.
    error NotFederatorOrValidator(address caller);
    /// Only `provider` itself may do this (validators may also remove nodes).
    error CallerNotProvider(address caller, address provider);

    // --- providers and stake ---

    error ProviderAlreadyRegistered(address provider);
    error ProviderNotRegistered(address provider);
    error ProviderNotWhitelisted(address provider);
    /// The stake (after this call) would be `given`, below the `required` minimum.
    error StakeBelowMinimum(uint256 given, uint256 required);
    /// `reclaimStake` asked for more than the stake above the provider's minimum.
    error ReclaimExceedsExcess(uint256 requested, uint256 available);
    error ZeroAmount();
    /// `withdraw` found no unbonding entry whose release time has passed.
    error NothingToWithdraw();
    /// The staker already has `max` pending unbonds (this bounds the slash and withdraw loops).
    error TooManyUnbonds(uint256 max);
    /// The unbonding period is above StakeManager.MAX_UNBONDING_PERIOD.
    error InvalidUnbondingPeriod(uint256 period);
    /// The stake minimum per compute unit is above StakeManager.MAX_STAKE_MINIMUM.
    error InvalidStakeMinimum(uint256 minimum);
    /// StakeManager's token balance does not cover the recorded stake (tokens were not transferred first).
    error StakeNotFunded(uint256 balance, uint256 required);

    // --- nodes ---

    error UnknownNode(address node);
    error NodeAlreadyRegistered(address node);
    error NodeNotOwnedBy(address node, address provider);
    /// The node-key signature does not recover to the node address: forged, signed for another provider,
    /// an old nonce (replay), another chain or another PrimeNetwork deployment.
    error InvalidNodeSignature();
    /// Compute units must be in 1..ComputeRegistry.MAX_COMPUTE_UNITS.
    error InvalidComputeUnits(uint256 computeUnits);
    error NodeNotValidated(address node);
    /// The node is already in pool `poolId` (a node is in at most one pool at a time).
    error NodeAlreadyInPool(address node, uint256 poolId);
    /// The node is still in pool `poolId`; it must leave (or be ejected) first.
    error NodeStillInPool(address node, uint256 poolId);
    error NodeNotInPool(uint256 poolId, address node);
    error NodeBlacklistedFromPool(uint256 poolId, address node);

    // --- domains and pools ---

    error DomainNotFound(uint256 domainId);
    error PoolNotFound(uint256 poolId);
    /// The pool is not in the status this call needs. Status: 0 PENDING, 1 ACTIVE, 2 COMPLETED.
    error InvalidPoolStatus(uint256 poolId, uint8 status);
    /// Joining needs an ACTIVE pool. Status: 0 PENDING, 1 ACTIVE, 2 COMPLETED.
    error PoolNotActive(uint256 poolId, uint8 status);
    /// Only the pool's creator or its compute manager may do this.
    error NotPoolCreatorOrManager(uint256 poolId, address caller);
    /// The invite is valid while `block.timestamp <= expiry`.
    error InviteExpired(uint256 expiry, uint256 nowTimestamp);
    /// The invite nonce was already consumed in this pool.
    error InviteAlreadyUsed(uint256 poolId, uint256 nonce);
    /// The invite was not signed by the pool's compute manager for this chain, contract, pool, domain,
    /// node, nonce and expiry.
    error InvalidInviteSignature();
    /// Joining would bring the pool's total compute to `required`, above its `limit`.
    error ComputeLimitExceeded(uint256 limit, uint256 required);

    // --- slashing ---

    /// The federator has not set a treasury yet (`setTreasury`), so nothing can be slashed.
    error TreasuryNotSet();
    /// The treasury may not be PrimeNetwork or one of its modules (tokens sent there would be stuck).
    error InvalidTreasury(address treasury);
    /// The slash reason is empty or longer than PrimeNetwork.MAX_SLASH_REASON_BYTES.
    error InvalidSlashReason(uint256 length);
    /// The slash period is 0 or above PrimeNetwork.MAX_SLASH_PERIOD.
    error InvalidSlashPeriod(uint256 period);
    /// One slash may take at most `cap` (0 until the federator sets the limits: slashing is off).
    error SlashExceedsCallCap(uint256 amount, uint256 cap);
    /// `provider` may lose at most `remaining` more in the current slash period.
    error SlashExceedsProviderPeriodCap(address provider, uint256 amount, uint256 remaining);
    /// All providers together may lose at most `remaining` more in the current slash period.
    error SlashExceedsNetworkPeriodCap(uint256 amount, uint256 remaining);
}
