// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {EnumerableSet} from "@openzeppelin/contracts/utils/structs/EnumerableSet.sol";
import {IComputePool} from "./interfaces/IComputePool.sol";
import {IComputeRegistry} from "./interfaces/IComputeRegistry.sol";
import {IPrimeErrors} from "./interfaces/IPrimeErrors.sol";

/// @title ComputeRegistry
/// @notice The registry of providers and compute nodes. It holds data and enforces its own consistency
/// (ownership, uniqueness, "not in a pool"); the policy (roles, signatures, stake) lives in PrimeNetwork.
/// @dev Bound to one PrimeNetwork at construction: that address is the only writer of everything except
/// the `isActive` flag, which only the ComputePool set once through `setComputePool` may change. There
/// is no role to grant, so no role can be granted to the wrong account.
contract ComputeRegistry is IComputeRegistry, IPrimeErrors {
    using EnumerableSet for EnumerableSet.AddressSet;

    /// Upper bound on one node's compute units; it keeps `units * stakeMinimum` far from overflow.
    uint256 public constant MAX_COMPUTE_UNITS = type(uint32).max;

    struct Provider {
        bool registered;
        bool whitelisted;
        uint256 activeNodes;
        uint256 totalCompute;
        EnumerableSet.AddressSet nodes;
    }

    address public immutable primeNetwork;
    address public computePool;

    mapping(address provider => Provider) private _providers;
    mapping(address node => ComputeNode) private _nodes;

    modifier onlyPrimeNetwork() {
        if (msg.sender != primeNetwork) revert CallerNotPrimeNetwork(msg.sender);
        _;
    }

    /// @param primeNetwork_ the PrimeNetwork this registry belongs to
    constructor(address primeNetwork_) {
        if (primeNetwork_ == address(0)) revert ZeroAddress();
        primeNetwork = primeNetwork_;
    }

    // ------------------------------------------------------------------ writes (PrimeNetwork)

    /// @notice Binds the ComputePool allowed to flip `isActive`. Once; called by PrimeNetwork.setModules.
    function setComputePool(address pool) external onlyPrimeNetwork {
        if (pool == address(0)) revert ZeroAddress();
        if (computePool != address(0)) revert AlreadyWired();
        computePool = pool;
    }

    function register(address provider) external onlyPrimeNetwork {
        Provider storage p = _providers[provider];
        if (p.registered) revert ProviderAlreadyRegistered(provider);
        p.registered = true;
    }

    function setWhitelistStatus(address provider, bool status) external onlyPrimeNetwork {
        _registered(provider).whitelisted = status;
    }

    /// @notice Records a new, inactive and unvalidated node. A node that was removed may be added again
    /// (by any provider): PrimeNetwork's per-node nonce makes the old ownership signature useless.
    function addComputeNode(address provider, address node, uint256 computeUnits, string calldata specsURI)
        external
        onlyPrimeNetwork
    {
        if (node == address(0)) revert ZeroAddress();
        if (computeUnits == 0 || computeUnits > MAX_COMPUTE_UNITS) revert InvalidComputeUnits(computeUnits);
        if (_nodes[node].provider != address(0)) revert NodeAlreadyRegistered(node);
        Provider storage p = _registered(provider);
        _nodes[node] = ComputeNode({
            provider: provider,
            node: node,
            specsURI: specsURI,
            computeUnits: computeUnits,
            isActive: false,
            isValidated: false
        });
        p.nodes.add(node);
        p.totalCompute += computeUnits;
    }

    /// @notice Deletes a node. It must belong to `provider` and must not be in a pool.
    function removeComputeNode(address provider, address node) external onlyPrimeNetwork {
        ComputeNode storage n = _owned(provider, node);
        if (n.isActive) revert NodeStillInPool(node, _poolOf(node));
        Provider storage p = _providers[provider];
        p.totalCompute -= n.computeUnits;
        p.nodes.remove(node);
        delete _nodes[node];
    }

    function setNodeValidationStatus(address provider, address node, bool status) external onlyPrimeNetwork {
        _owned(provider, node).isValidated = status;
    }

    // ------------------------------------------------------------------ writes (ComputePool)

    /// @notice Mirrors pool membership into the node record (what discovery and validators read).
    function setNodeActive(address node, bool active) external {
        if (msg.sender != computePool) revert CallerNotComputePool(msg.sender);
        ComputeNode storage n = _node(node);
        if (n.isActive == active) return;
        n.isActive = active;
        Provider storage p = _providers[n.provider];
        if (active) {
            p.activeNodes += 1;
        } else {
            p.activeNodes -= 1;
        }
    }

    // ------------------------------------------------------------------ views

    function isProviderRegistered(address provider) external view returns (bool) {
        return _providers[provider].registered;
    }

    function isProviderWhitelisted(address provider) external view returns (bool) {
        return _providers[provider].whitelisted;
    }

    /// @notice The provider's summary; an unknown address gives `isRegistered == false` (no revert).
    function getProvider(address provider) external view returns (ProviderInfo memory) {
        Provider storage p = _providers[provider];
        return ProviderInfo({
            provider: provider,
            isRegistered: p.registered,
            isWhitelisted: p.whitelisted,
            nodeCount: p.nodes.length(),
            activeNodes: p.activeNodes,
            totalCompute: p.totalCompute
        });
    }

    /// @notice The provider's node keys (unordered).
    function getProviderNodes(address provider) external view returns (address[] memory) {
        return _providers[provider].nodes.values();
    }

    function getProviderTotalCompute(address provider) external view returns (uint256) {
        return _providers[provider].totalCompute;
    }

    function nodeExists(address node) external view returns (bool) {
        return _nodes[node].provider != address(0);
    }

    /// @notice The node record; reverts with UnknownNode for a node that is not registered.
    function getNode(address node) external view returns (ComputeNode memory) {
        return _node(node);
    }

    /// @notice The node's provider, or address(0) for an unknown node (no revert).
    function getNodeProvider(address node) external view returns (address) {
        return _nodes[node].provider;
    }

    // ------------------------------------------------------------------ internals

    function _registered(address provider) private view returns (Provider storage p) {
        p = _providers[provider];
        if (!p.registered) revert ProviderNotRegistered(provider);
    }

    function _node(address node) private view returns (ComputeNode storage n) {
        n = _nodes[node];
        if (n.provider == address(0)) revert UnknownNode(node);
    }

    function _owned(address provider, address node) private view returns (ComputeNode storage n) {
        n = _node(node);
        if (n.provider != provider) revert NodeNotOwnedBy(node, provider);
    }

    function _poolOf(address node) private view returns (uint256 poolId) {
        (, poolId) = IComputePool(computePool).getNodePool(node);
    }
}
