// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title IPrimeNetwork
/// @notice The network's front door: providers, nodes, stake, domains and the roles that govern them.
interface IPrimeNetwork {
    event ModulesSet(address computeRegistry, address domainRegistry, address stakeManager, address computePool);
    event ProviderRegistered(address indexed provider, uint256 stake);
    event ProviderWhitelisted(address indexed provider);
    event ProviderBlacklisted(address indexed provider);
    event ComputeNodeAdded(address indexed provider, address indexed node, uint256 computeUnits, string specsURI);
    event ComputeNodeRemoved(address indexed provider, address indexed node);
    event ComputeNodeValidated(address indexed provider, address indexed node);
    event ComputeNodeInvalidated(address indexed provider, address indexed node);
    event DomainCreated(uint256 indexed domainId, string name, string parametersURI);

    /// What the federator allows slashing to take. A period is a window per provider (and one for the whole
    /// network) that opens with the first slash after the previous window ended and lasts `period` seconds.
    /// Zero caps refuse every slash.
    struct SlashLimits {
        uint256 perCall;
        uint256 perProviderPerPeriod;
        uint256 perNetworkPerPeriod;
        uint256 period;
    }

    /// A slash window: opened at `start`, `used` taken in it so far.
    struct SlashWindow {
        uint256 start;
        uint256 used;
    }

    /// Slashed stake now goes to `newTreasury`.
    event TreasuryUpdated(address indexed previousTreasury, address indexed newTreasury);
    event SlashLimitsUpdated(
        uint256 perCall, uint256 perProviderPerPeriod, uint256 perNetworkPerPeriod, uint256 period
    );
    /// `slasher` took `amount` of `provider`'s stake (it may be less than requested: all there was) and sent it
    /// to `treasury`, for `reason`. StakeManager also emits `Slashed`.
    event ProviderSlashed(
        address indexed provider, address indexed slasher, address indexed treasury, uint256 amount, bytes reason
    );

    function FEDERATOR_ROLE() external view returns (bytes32);
    function VALIDATOR_ROLE() external view returns (bytes32);
    function SLASHER_ROLE() external view returns (bytes32);
    function calculateMinimumStake(address provider, uint256 computeUnits) external view returns (uint256);
}
