// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title IDomainRegistry
/// @notice Append-only list of compute domains; written by PrimeNetwork only.
interface IDomainRegistry {
    /// @param domainId index in the registry, starting at 0
    /// @param name human-readable name, e.g. "inference"
    /// @param parametersURI free-form pointer to the domain's parameters
    struct Domain {
        uint256 domainId;
        string name;
        string parametersURI;
    }

    function primeNetwork() external view returns (address);
    function create(string calldata name, string calldata parametersURI) external returns (uint256 domainId);
    function get(uint256 domainId) external view returns (Domain memory);
    function count() external view returns (uint256);
    function exists(uint256 domainId) external view returns (bool);
}
