// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {EnumerableSet} from "@openzeppelin/contracts/utils/structs/EnumerableSet.sol";
import {IComputePool} from "./interfaces/IComputePool.sol";
import {IComputeRegistry} from "./interfaces/IComputeRegistry.sol";
import {IDomainRegistry} from "./interfaces/IDomainRegistry.sol";
import {IPrimeErrors} from "./interfaces/IPrimeErrors.sol";
import {IPrimeNetwork} from "./interfaces/IPrimeNetwork.sol";
import {IStakeManager} from "./interfaces/IStakeManager.sol";

/// @title ComputePool
/// @notice Compute pools and their membership. The federator creates a pool in a domain and names its
/// compute manager key (the orchestrator); the creator or the manager starts and ends it, ejects and
/// blacklists nodes. A provider puts one of its validated nodes into an ACTIVE pool with an invite the
/// manager signed. A node is in at most one pool at a time.
///
/// Invites are EIP-712 signatures by the pool's compute manager over
/// `PoolInvite(uint256 domainId,uint256 poolId,address node,uint256 nonce,uint256 expiry)` in the domain
/// {name "ComputePool", version "1", chainId, verifyingContract = this}. An invite is valid while
/// `block.timestamp <= expiry`, and single use: its `nonce` is consumed in its pool when the node joins
/// (nonces are per pool and must be unique within it; a random 256-bit value is the intended choice).
/// Rotating the manager key (`updateComputeManagerKey`) voids every outstanding invite of the pool.
contract ComputePool is IComputePool, IPrimeErrors, EIP712 {
    using EnumerableSet for EnumerableSet.AddressSet;

    bytes32 public constant POOL_INVITE_TYPEHASH =
        keccak256("PoolInvite(uint256 domainId,uint256 poolId,address node,uint256 nonce,uint256 expiry)");
    /// The PrimeNetwork role allowed to create pools.
    bytes32 public constant FEDERATOR_ROLE = keccak256("FEDERATOR_ROLE");

    address public immutable primeNetwork;
    address public immutable computeRegistry;
    address public immutable domainRegistry;
    address public immutable stakeManager;

    struct Pool {
        PoolInfo info;
        EnumerableSet.AddressSet nodes;
        mapping(address node => bool) blacklisted;
        mapping(uint256 nonce => bool) usedInviteNonces;
    }

    Pool[] private _pools;
    /// poolId + 1 of the pool the node is in; 0 = in no pool.
    mapping(address node => uint256) private _nodePoolPlusOne;

    modifier onlyCreatorOrManager(uint256 poolId) {
        PoolInfo storage info = _pool(poolId).info;
        if (msg.sender != info.creator && msg.sender != info.computeManagerKey) {
            revert NotPoolCreatorOrManager(poolId, msg.sender);
        }
        _;
    }

    /// @dev All four addresses are checked against each other by PrimeNetwork.setModules.
    constructor(address primeNetwork_, address computeRegistry_, address domainRegistry_, address stakeManager_)
        EIP712("ComputePool", "1")
    {
        if (
            primeNetwork_ == address(0) || computeRegistry_ == address(0) || domainRegistry_ == address(0)
                || stakeManager_ == address(0)
        ) revert ZeroAddress();
        primeNetwork = primeNetwork_;
        computeRegistry = computeRegistry_;
        domainRegistry = domainRegistry_;
        stakeManager = stakeManager_;
    }

    // ------------------------------------------------------------------ pool administration

    /// @notice Creates a PENDING pool and returns its id (0, 1, 2, ...). Caller: FEDERATOR_ROLE on
    /// PrimeNetwork; it becomes the pool's creator.
    /// @param computeLimit maximum total compute units in the pool; 0 means unlimited
    function createComputePool(
        uint256 domainId,
        address computeManagerKey,
        string calldata poolName,
        string calldata poolDataURI,
        uint256 computeLimit
    ) external returns (uint256 poolId) {
        if (!IAccessControl(primeNetwork).hasRole(FEDERATOR_ROLE, msg.sender)) {
            revert IAccessControl.AccessControlUnauthorizedAccount(msg.sender, FEDERATOR_ROLE);
        }
        if (!IDomainRegistry(domainRegistry).exists(domainId)) revert DomainNotFound(domainId);
        if (computeManagerKey == address(0)) revert ZeroAddress();

        poolId = _pools.length;
        Pool storage pool = _pools.push();
        pool.info = PoolInfo({
            poolId: poolId,
            domainId: domainId,
            poolName: poolName,
            creator: msg.sender,
            computeManagerKey: computeManagerKey,
            creationTime: block.timestamp,
            startTime: 0,
            endTime: 0,
            poolDataURI: poolDataURI,
            totalCompute: 0,
            computeLimit: computeLimit,
            nodeCount: 0,
            status: PoolStatus.PENDING
        });
        emit ComputePoolCreated(poolId, domainId, msg.sender, computeManagerKey, poolName, poolDataURI, computeLimit);
    }

    /// @notice PENDING -> ACTIVE. Creator or manager.
    function startComputePool(uint256 poolId) external onlyCreatorOrManager(poolId) {
        PoolInfo storage info = _pools[poolId].info;
        if (info.status != PoolStatus.PENDING) revert InvalidPoolStatus(poolId, uint8(info.status));
        info.status = PoolStatus.ACTIVE;
        info.startTime = block.timestamp;
        emit ComputePoolStarted(poolId, block.timestamp);
    }

    /// @notice PENDING or ACTIVE -> COMPLETED. Creator or manager. Nobody can join afterwards; nodes still
    /// in the pool stay recorded there (and cannot join another pool) until they leave or are ejected,
    /// which remains possible.
    function endComputePool(uint256 poolId) external onlyCreatorOrManager(poolId) {
        PoolInfo storage info = _pools[poolId].info;
        if (info.status == PoolStatus.COMPLETED) revert InvalidPoolStatus(poolId, uint8(info.status));
        info.status = PoolStatus.COMPLETED;
        info.endTime = block.timestamp;
        emit ComputePoolEnded(poolId, block.timestamp);
    }

    /// @notice Replaces the pool data (e.g. the requirements string). Creator or manager.
    function updateComputePoolURI(uint256 poolId, string calldata poolDataURI) external onlyCreatorOrManager(poolId) {
        _pools[poolId].info.poolDataURI = poolDataURI;
        emit ComputePoolURIUpdated(poolId, poolDataURI);
    }

    /// @notice Sets the compute limit (0 = unlimited). Nodes already in are kept; it applies to joins.
    function updateComputeLimit(uint256 poolId, uint256 computeLimit) external onlyCreatorOrManager(poolId) {
        _pools[poolId].info.computeLimit = computeLimit;
        emit ComputePoolLimitUpdated(poolId, computeLimit);
    }

    /// @notice Rotates the manager key; every invite signed by the previous key stops working.
    function updateComputeManagerKey(uint256 poolId, address computeManagerKey) external onlyCreatorOrManager(poolId) {
        if (computeManagerKey == address(0)) revert ZeroAddress();
        PoolInfo storage info = _pools[poolId].info;
        address previous = info.computeManagerKey;
        info.computeManagerKey = computeManagerKey;
        emit ComputePoolManagerUpdated(poolId, previous, computeManagerKey);
    }

    /// @notice Removes a node from the pool. It may rejoin with a fresh invite. Creator or manager.
    function ejectNode(uint256 poolId, address node) external onlyCreatorOrManager(poolId) {
        if (!isNodeInPool(poolId, node)) revert NodeNotInPool(poolId, node);
        address provider = _removeNode(poolId, node);
        emit ComputePoolNodeEjected(poolId, provider, node);
    }

    /// @notice Bars a node from the pool for good, ejecting it first when it is in. A node need not be
    /// registered to be blacklisted. Creator or manager.
    function blacklistNode(uint256 poolId, address node) external onlyCreatorOrManager(poolId) {
        Pool storage pool = _pools[poolId];
        if (node == address(0)) revert ZeroAddress();
        address provider = IComputeRegistry(computeRegistry).getNodeProvider(node);
        if (isNodeInPool(poolId, node)) {
            _removeNode(poolId, node);
            emit ComputePoolNodeEjected(poolId, provider, node);
        }
        pool.blacklisted[node] = true;
        emit ComputePoolNodeBlacklisted(poolId, provider, node);
    }

    // ------------------------------------------------------------------ providers

    /// @notice Puts `node` into ACTIVE pool `poolId` with the manager's invite. Caller: `provider`, which
    /// must own the node, be whitelisted and hold the minimum stake; the node must be validated, in no
    /// pool and not blacklisted here; the invite must be unexpired, unused and signed by the manager;
    /// the pool's compute limit must allow the node's units.
    function joinComputePool(
        uint256 poolId,
        address provider,
        address node,
        uint256 nonce,
        uint256 expiry,
        bytes calldata signature
    ) external {
        Pool storage pool = _pool(poolId);
        if (pool.info.status != PoolStatus.ACTIVE) revert PoolNotActive(poolId, uint8(pool.info.status));
        if (msg.sender != provider) revert CallerNotProvider(msg.sender, provider);
        uint256 computeUnits = _checkNodeMayJoin(pool, poolId, provider, node);
        _consumeInvite(pool, poolId, node, nonce, expiry, signature);

        uint256 newTotal = pool.info.totalCompute + computeUnits;
        if (pool.info.computeLimit != 0 && newTotal > pool.info.computeLimit) {
            revert ComputeLimitExceeded(pool.info.computeLimit, newTotal);
        }
        pool.nodes.add(node);
        pool.info.totalCompute = newTotal;
        pool.info.nodeCount += 1;
        _nodePoolPlusOne[node] = poolId + 1;
        IComputeRegistry(computeRegistry).setNodeActive(node, true);
        emit ComputePoolJoined(poolId, provider, node, computeUnits);
    }

    /// @notice Takes the caller's node out of the pool, whatever the pool's status. Caller: `provider`.
    function leaveComputePool(uint256 poolId, address provider, address node) external {
        _pool(poolId);
        if (msg.sender != provider) revert CallerNotProvider(msg.sender, provider);
        if (!isNodeInPool(poolId, node)) revert NodeNotInPool(poolId, node);
        if (IComputeRegistry(computeRegistry).getNodeProvider(node) != provider) revert NodeNotOwnedBy(node, provider);
        _removeNode(poolId, node);
        emit ComputePoolLeft(poolId, provider, node);
    }

    // ------------------------------------------------------------------ views

    function poolCount() external view returns (uint256) {
        return _pools.length;
    }

    /// @notice The pool record; reverts with PoolNotFound for an unknown id.
    function getComputePool(uint256 poolId) external view returns (PoolInfo memory) {
        return _pool(poolId).info;
    }

    /// @notice The nodes currently in the pool (unordered).
    function getComputePoolNodes(uint256 poolId) external view returns (address[] memory) {
        return _pool(poolId).nodes.values();
    }

    function getComputePoolTotalCompute(uint256 poolId) external view returns (uint256) {
        return _pool(poolId).info.totalCompute;
    }

    /// @notice False for unknown pools and nodes (no revert).
    function isNodeInPool(uint256 poolId, address node) public view returns (bool) {
        return _nodePoolPlusOne[node] == poolId + 1 && poolId < _pools.length;
    }

    /// @notice The pool the node is in, if any.
    function getNodePool(address node) external view returns (bool inPool, uint256 poolId) {
        uint256 plusOne = _nodePoolPlusOne[node];
        return plusOne == 0 ? (false, 0) : (true, plusOne - 1);
    }

    function isNodeBlacklistedFromPool(uint256 poolId, address node) external view returns (bool) {
        return _pool(poolId).blacklisted[node];
    }

    function isInviteNonceUsed(uint256 poolId, uint256 nonce) external view returns (bool) {
        return _pool(poolId).usedInviteNonces[nonce];
    }

    /// @notice The EIP-712 digest the compute manager signs for an invite (see the contract notice).
    function hashPoolInvite(uint256 domainId, uint256 poolId, address node, uint256 nonce, uint256 expiry)
        public
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(keccak256(abi.encode(POOL_INVITE_TYPEHASH, domainId, poolId, node, nonce, expiry)));
    }

    /// @notice The EIP-712 domain separator for the current chain.
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    // ------------------------------------------------------------------ internals

    function _pool(uint256 poolId) private view returns (Pool storage) {
        if (poolId >= _pools.length) revert PoolNotFound(poolId);
        return _pools[poolId];
    }

    /// @return computeUnits the node's units
    function _checkNodeMayJoin(Pool storage pool, uint256 poolId, address provider, address node)
        private
        view
        returns (uint256 computeUnits)
    {
        IComputeRegistry registry = IComputeRegistry(computeRegistry);
        IComputeRegistry.ComputeNode memory n = registry.getNode(node); // reverts UnknownNode
        if (n.provider != provider) revert NodeNotOwnedBy(node, provider);
        if (!registry.isProviderWhitelisted(provider)) revert ProviderNotWhitelisted(provider);
        if (!n.isValidated) revert NodeNotValidated(node);
        if (pool.blacklisted[node]) revert NodeBlacklistedFromPool(poolId, node);
        uint256 current = _nodePoolPlusOne[node];
        if (current != 0) revert NodeAlreadyInPool(node, current - 1);
        // Stake may have fallen below the minimum (slash) since the node was validated.
        uint256 required = IPrimeNetwork(primeNetwork).calculateMinimumStake(provider, 0);
        uint256 stake = IStakeManager(stakeManager).getStake(provider);
        if (stake < required) revert StakeBelowMinimum(stake, required);
        return n.computeUnits;
    }

    /// @dev Checks expiry, single use and the manager's signature, then burns the nonce.
    function _consumeInvite(
        Pool storage pool,
        uint256 poolId,
        address node,
        uint256 nonce,
        uint256 expiry,
        bytes calldata signature
    ) private {
        if (block.timestamp > expiry) revert InviteExpired(expiry, block.timestamp);
        if (pool.usedInviteNonces[nonce]) revert InviteAlreadyUsed(poolId, nonce);
        bytes32 digest = hashPoolInvite(pool.info.domainId, poolId, node, nonce, expiry);
        if (!SignatureChecker.isValidSignatureNow(pool.info.computeManagerKey, digest, signature)) {
            revert InvalidInviteSignature();
        }
        pool.usedInviteNonces[nonce] = true;
    }

    function _removeNode(uint256 poolId, address node) private returns (address provider) {
        Pool storage pool = _pools[poolId];
        IComputeRegistry registry = IComputeRegistry(computeRegistry);
        IComputeRegistry.ComputeNode memory n = registry.getNode(node);
        pool.nodes.remove(node);
        pool.info.totalCompute -= n.computeUnits;
        pool.info.nodeCount -= 1;
        delete _nodePoolPlusOne[node];
        registry.setNodeActive(node, false);
        return n.provider;
    }
}
