// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title IComputeRegistry
/// @notice Providers and their compute nodes. Written by PrimeNetwork (and, for the `isActive` flag, by
/// ComputePool); read by everyone.
interface IComputeRegistry {
    /// @notice A compute node as stored on chain.
    /// @param provider the provider that added the node
    /// @param node the node key (an address whose key lives on the GPU host)
    /// @param specsURI where the node's hardware description lives (free-form string)
    /// @param computeUnits capacity declared by the provider; stake is required per unit
    /// @param isActive true while the node is in a compute pool
    /// @param isValidated set by a validator after checking the node
    struct ComputeNode {
        address provider;
        address node;
        string specsURI;
        uint256 computeUnits;
        bool isActive;
        bool isValidated;
    }

    /// @notice A provider's summary (`isRegistered` false means: unknown address, all other fields zero).
    struct ProviderInfo {
        address provider;
        bool isRegistered;
        bool isWhitelisted;
        uint256 nodeCount;
        uint256 activeNodes;
        uint256 totalCompute;
    }

    function primeNetwork() external view returns (address);
    function computePool() external view returns (address);

    function setComputePool(address pool) external;
    function register(address provider) external;
    function setWhitelistStatus(address provider, bool status) external;
    function addComputeNode(address provider, address node, uint256 computeUnits, string calldata specsURI) external;
    function removeComputeNode(address provider, address node) external;
    function setNodeValidationStatus(address provider, address node, bool status) external;
    function setNodeActive(address node, bool active) external;

    function isProviderRegistered(address provider) external view returns (bool);
    function isProviderWhitelisted(address provider) external view returns (bool);
    function getProvider(address provider) external view returns (ProviderInfo memory);
    function getProviderNodes(address provider) external view returns (address[] memory);
    function getProviderTotalCompute(address provider) external view returns (uint256);
    function nodeExists(address node) external view returns (bool);
    function getNode(address node) external view returns (ComputeNode memory);
    function getNodeProvider(address node) external view returns (address);
}
