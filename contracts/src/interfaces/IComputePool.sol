// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title IComputePool
/// @notice Compute pools: a domain, a compute manager key (the orchestrator) that signs invites, and the
/// nodes that joined with such an invite.
interface IComputePool {
    /// PENDING (0) -> ACTIVE (1) -> COMPLETED (2). A PENDING pool may also be ended directly.
    enum PoolStatus {
        PENDING,
        ACTIVE,
        COMPLETED
    }

    /// @param poolDataURI free-form pool data, e.g. the node requirements string
    /// @param computeLimit maximum total compute units in the pool; 0 means unlimited
    /// @param totalCompute compute units of the nodes currently in the pool
    /// @param startTime / endTime 0 until the pool is started / ended
    struct PoolInfo {
        uint256 poolId;
        uint256 domainId;
        string poolName;
        address creator;
        address computeManagerKey;
        uint256 creationTime;
        uint256 startTime;
        uint256 endTime;
        string poolDataURI;
        uint256 totalCompute;
        uint256 computeLimit;
        uint256 nodeCount;
        PoolStatus status;
    }

    event ComputePoolCreated(
        uint256 indexed poolId,
        uint256 indexed domainId,
        address indexed creator,
        address computeManagerKey,
        string poolName,
        string poolDataURI,
        uint256 computeLimit
    );
    event ComputePoolStarted(uint256 indexed poolId, uint256 timestamp);
    event ComputePoolEnded(uint256 indexed poolId, uint256 timestamp);
    event ComputePoolURIUpdated(uint256 indexed poolId, string poolDataURI);
    event ComputePoolLimitUpdated(uint256 indexed poolId, uint256 computeLimit);
    event ComputePoolManagerUpdated(
        uint256 indexed poolId, address indexed previousManager, address indexed newManager
    );
    event ComputePoolJoined(
        uint256 indexed poolId, address indexed provider, address indexed node, uint256 computeUnits
    );
    event ComputePoolLeft(uint256 indexed poolId, address indexed provider, address indexed node);
    event ComputePoolNodeEjected(uint256 indexed poolId, address indexed provider, address indexed node);
    event ComputePoolNodeBlacklisted(uint256 indexed poolId, address indexed provider, address indexed node);

    function primeNetwork() external view returns (address);
    function computeRegistry() external view returns (address);
    function domainRegistry() external view returns (address);
    function stakeManager() external view returns (address);

    function isNodeInPool(uint256 poolId, address node) external view returns (bool);
    function getNodePool(address node) external view returns (bool inPool, uint256 poolId);
}
