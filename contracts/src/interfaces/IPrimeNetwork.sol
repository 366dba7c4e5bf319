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

    function FEDERATOR_ROLE() external view returns (bytes32);
    function VALIDATOR_ROLE() external view returns (bytes32);
    function calculateMinimumStake(address provider, uint256 computeUnits) external view returns (uint256);
}
