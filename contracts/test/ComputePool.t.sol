// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {ComputePool} from "../src/ComputePool.sol";
import {IComputePool} from "../src/interfaces/IComputePool.sol";
import {IPrimeErrors} from "../src/interfaces/IPrimeErrors.sol";
import {TestBase} from "./utils/TestBase.sol";

/// @notice Pools: status, membership, invites (EIP-712, single use, expiry, binding), ejection, blacklist.
contract ComputePoolTest is TestBase {
    uint256 internal poolId;
    uint256 internal domainId;

    function setUp() public override {
        super.setUp();
        poolId = activePool(0);
        domainId = pools.getComputePool(poolId).domainId;
        readyNode(provider, NODE_PK, 10);
    }

    function _join(Invite memory inv) internal {
        vm.prank(provider);
        pools.joinComputePool(poolId, provider, node, inv.nonce, inv.expiry, inv.signature);
    }

    function _expectJoinRevert(Invite memory inv, bytes memory err) internal {
        vm.expectRevert(err);
        _join(inv);
    }

    function _sel(bytes4 selector) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(selector);
    }

    // ------------------------------------------------------------------ creation and status

    function test_CreateComputePool() public {
        vm.expectEmit(true, true, true, true, address(pools));
        emit IComputePool.ComputePoolCreated(1, domainId, federator, manager, "second", "gpu:count>=8", 500);
        vm.prank(federator);
        uint256 id = pools.createComputePool(domainId, manager, "second", "gpu:count>=8", 500);

        IComputePool.PoolInfo memory info = pools.getComputePool(id);
        assertEq(info.poolId, 1, "id");
        assertEq(info.domainId, domainId, "domain");
        assertEq(info.poolName, "second", "name");
        assertEq(info.creator, federator, "creator");
        assertEq(info.computeManagerKey, manager, "manager");
        assertEq(info.creationTime, block.timestamp, "created");
        assertEq(info.startTime, 0, "not started");
        assertEq(info.poolDataURI, "gpu:count>=8", "data");
        assertEq(info.computeLimit, 500, "limit");
        assertEq(uint256(info.status), uint256(IComputePool.PoolStatus.PENDING), "pending");
        assertEq(pools.poolCount(), 2, "count");
    }

    function test_CreateComputePool_RevertsUnknownDomain() public {
        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.DomainNotFound.selector, 9));
        vm.prank(federator);
        pools.createComputePool(9, manager, "p", "", 0);
    }

    function test_CreateComputePool_RevertsZeroManager() public {
        vm.expectRevert(IPrimeErrors.ZeroAddress.selector);
        vm.prank(federator);
        pools.createComputePool(domainId, address(0), "p", "", 0);
    }

    function test_StatusTransitions() public {
        vm.prank(federator);
        uint256 id = pools.createComputePool(domainId, manager, "p", "", 0);

        vm.expectEmit(true, true, true, true, address(pools));
        emit IComputePool.ComputePoolStarted(id, block.timestamp);
        vm.prank(manager);
        pools.startComputePool(id);
        assertEq(pools.getComputePool(id).startTime, block.timestamp, "start time");

        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.InvalidPoolStatus.selector, id, 1));
        vm.prank(manager);
        pools.startComputePool(id);

        vm.warp(block.timestamp + 60);
        vm.expectEmit(true, true, true, true, address(pools));
        emit IComputePool.ComputePoolEnded(id, block.timestamp);
        vm.prank(manager);
        pools.endComputePool(id);
        assertEq(uint256(pools.getComputePool(id).status), uint256(IComputePool.PoolStatus.COMPLETED), "done");

        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.InvalidPoolStatus.selector, id, 2));
        vm.prank(manager);
        pools.endComputePool(id);
        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.InvalidPoolStatus.selector, id, 2));
        vm.prank(manager);
        pools.startComputePool(id);
    }

    function test_UnknownPool() public {
        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.PoolNotFound.selector, 7));
        pools.getComputePool(7);
        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.PoolNotFound.selector, 7));
        vm.prank(manager);
        pools.startComputePool(7);
        assertFalse(pools.isNodeInPool(7, node), "unknown pool has no nodes");
        Invite memory inv = invite(poolId, node);
        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.PoolNotFound.selector, 7));
        vm.prank(provider);
        pools.joinComputePool(7, provider, node, inv.nonce, inv.expiry, inv.signature);
    }

    // ------------------------------------------------------------------ joining

    function test_Join() public {
        Invite memory inv = invite(poolId, node);
        vm.expectEmit(true, true, true, true, address(pools));
        emit IComputePool.ComputePoolJoined(poolId, provider, node, 10);
        _join(inv);

        assertTrue(pools.isNodeInPool(poolId, node), "in pool");
        (bool inPool, uint256 where) = pools.getNodePool(node);
        assertTrue(inPool, "getNodePool");
        assertEq(where, poolId, "getNodePool id");
        assertTrue(registry.getNode(node).isActive, "registry isActive");
        assertEq(registry.getProvider(provider).activeNodes, 1, "provider active nodes");
        assertEq(pools.getComputePoolTotalCompute(poolId), 10, "total compute");
        assertEq(pools.getComputePool(poolId).nodeCount, 1, "node count");
        assertEq(pools.getComputePoolNodes(poolId).length, 1, "node list");
        assertEq(pools.getComputePoolNodes(poolId)[0], node, "node list entry");
        assertTrue(pools.isInviteNonceUsed(poolId, inv.nonce), "nonce consumed");
    }

    function test_Join_RevertsPendingOrCompletedPool() public {
        vm.prank(federator);
        uint256 pending = pools.createComputePool(domainId, manager, "p", "", 0);
        Invite memory inv = invite(pending, node);
        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.PoolNotActive.selector, pending, 0));
        vm.prank(provider);
        pools.joinComputePool(pending, provider, node, inv.nonce, inv.expiry, inv.signature);

        inv = invite(poolId, node);
        vm.prank(manager);
        pools.endComputePool(poolId);
        _expectJoinRevert(inv, abi.encodeWithSelector(IPrimeErrors.PoolNotActive.selector, poolId, 2));
    }

    function test_Join_RevertsUnknownNode() public {
        Invite memory inv = invite(poolId, node2);
        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.UnknownNode.selector, node2));
        vm.prank(provider);
        pools.joinComputePool(poolId, provider, node2, inv.nonce, inv.expiry, inv.signature);
    }

    function test_Join_RevertsUnvalidatedNode() public {
        vm.prank(validator);
        network.invalidateNode(provider, node);
        _expectJoinRevert(invite(poolId, node), abi.encodeWithSelector(IPrimeErrors.NodeNotValidated.selector, node));
    }

    function test_Join_RevertsBlacklistedProvider() public {
        vm.prank(validator);
        network.blacklistProvider(provider);
        _expectJoinRevert(
            invite(poolId, node), abi.encodeWithSelector(IPrimeErrors.ProviderNotWhitelisted.selector, provider)
        );
    }

    function test_Join_RevertsAlreadyInPool() public {
        _join(invite(poolId, node));
        // The same pool again, with a fresh invite.
        _expectJoinRevert(
            invite(poolId, node), abi.encodeWithSelector(IPrimeErrors.NodeAlreadyInPool.selector, node, poolId)
        );
        // Another pool.
        vm.prank(federator);
        uint256 other = pools.createComputePool(domainId, manager, "other", "", 0);
        vm.prank(manager);
        pools.startComputePool(other);
        Invite memory inv = invite(other, node);
        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.NodeAlreadyInPool.selector, node, poolId));
        vm.prank(provider);
        pools.joinComputePool(other, provider, node, inv.nonce, inv.expiry, inv.signature);
    }

    function test_Join_RevertsOverComputeLimit() public {
        vm.prank(manager);
        pools.updateComputeLimit(poolId, 15);
        readyNode(provider, NODE2_PK, 6);
        _join(invite(poolId, node)); // 10 of 15
        Invite memory inv = invite(poolId, node2);
        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.ComputeLimitExceeded.selector, 15, 16));
        vm.prank(provider);
        pools.joinComputePool(poolId, provider, node2, inv.nonce, inv.expiry, inv.signature);

        vm.prank(manager);
        pools.updateComputeLimit(poolId, 16); // the limit itself is allowed
        vm.prank(provider);
        pools.joinComputePool(poolId, provider, node2, inv.nonce, inv.expiry, inv.signature);
        assertEq(pools.getComputePoolTotalCompute(poolId), 16, "total");
    }

    function test_Join_RevertsStakeBelowMinimumAfterSlash() public {
        vm.prank(slasher);
        network.slash(provider, 1, "bad");
        _expectJoinRevert(
            invite(poolId, node),
            abi.encodeWithSelector(IPrimeErrors.StakeBelowMinimum.selector, 10 * MIN_PER_UNIT - 1, 10 * MIN_PER_UNIT)
        );
    }

    // ------------------------------------------------------------------ invites

    function test_Invite_Replay() public {
        Invite memory inv = invite(poolId, node);
        _join(inv);
        vm.prank(provider);
        pools.leaveComputePool(poolId, provider, node);
        _expectJoinRevert(inv, abi.encodeWithSelector(IPrimeErrors.InviteAlreadyUsed.selector, poolId, inv.nonce));
        _join(invite(poolId, node)); // a fresh invite works
    }

    function test_Invite_NonceIsSingleUseAcrossNodes() public {
        readyNode(provider, NODE2_PK, 10);
        Invite memory inv = invite(poolId, node);
        _join(inv);
        // The manager reused the nonce for another node: refused, nonces are unique per pool.
        bytes memory sig =
            inviteSig(MANAGER_PK, domainId, poolId, node2, inv.nonce, inv.expiry, block.chainid, address(pools));
        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.InviteAlreadyUsed.selector, poolId, inv.nonce));
        vm.prank(provider);
        pools.joinComputePool(poolId, provider, node2, inv.nonce, inv.expiry, sig);
    }

    function test_Invite_Expiry() public {
        Invite memory inv = invite(poolId, node);
        vm.warp(inv.expiry + 1);
        _expectJoinRevert(inv, abi.encodeWithSelector(IPrimeErrors.InviteExpired.selector, inv.expiry, inv.expiry + 1));
        vm.warp(inv.expiry); // valid up to and including the expiry second
        _join(inv);
    }

    function test_Invite_SignedForAnotherChain() public {
        Invite memory inv = invite(poolId, node);
        inv.signature =
            inviteSig(MANAGER_PK, domainId, poolId, node, inv.nonce, inv.expiry, block.chainid + 1, address(pools));
        _expectJoinRevert(inv, _sel(IPrimeErrors.InvalidInviteSignature.selector));

        // Signed for this chain, submitted after the chain id changed.
        Invite memory here = invite(poolId, node);
        vm.chainId(block.chainid + 1);
        _expectJoinRevert(here, _sel(IPrimeErrors.InvalidInviteSignature.selector));
    }

    function test_Invite_SignedForAnotherPool() public {
        // Same manager, same domain: only the pool id differs.
        vm.prank(federator);
        uint256 other = pools.createComputePool(domainId, manager, "other", "", 0);
        vm.prank(manager);
        pools.startComputePool(other);
        Invite memory forOther = invite(other, node);
        _expectJoinRevert(forOther, _sel(IPrimeErrors.InvalidInviteSignature.selector));
        // It still works where it belongs.
        vm.prank(provider);
        pools.joinComputePool(other, provider, node, forOther.nonce, forOther.expiry, forOther.signature);
    }

    function test_Invite_SignedForAnotherDomain() public {
        Invite memory inv = invite(poolId, node);
        inv.signature =
            inviteSig(MANAGER_PK, domainId + 1, poolId, node, inv.nonce, inv.expiry, block.chainid, address(pools));
        _expectJoinRevert(inv, _sel(IPrimeErrors.InvalidInviteSignature.selector));
    }

    function test_Invite_SignedForAnotherDeployment() public {
        (,,,,, ComputePool otherPools) = deploy();
        Invite memory inv = invite(poolId, node);
        inv.signature =
            inviteSig(MANAGER_PK, domainId, poolId, node, inv.nonce, inv.expiry, block.chainid, address(otherPools));
        _expectJoinRevert(inv, _sel(IPrimeErrors.InvalidInviteSignature.selector));
    }

    function test_Invite_SignedByNonManager() public {
        Invite memory inv = invite(poolId, node);
        // The creator (federator) is not the signer of invites; nor is the provider, nor anyone else.
        inv.signature =
            inviteSig(FEDERATOR_PK, domainId, poolId, node, inv.nonce, inv.expiry, block.chainid, address(pools));
        _expectJoinRevert(inv, _sel(IPrimeErrors.InvalidInviteSignature.selector));
        inv.signature =
            inviteSig(PROVIDER_PK, domainId, poolId, node, inv.nonce, inv.expiry, block.chainid, address(pools));
        _expectJoinRevert(inv, _sel(IPrimeErrors.InvalidInviteSignature.selector));
        inv.signature = hex"deadbeef";
        _expectJoinRevert(inv, _sel(IPrimeErrors.InvalidInviteSignature.selector));
    }

    function test_Invite_ForAnotherNode() public {
        readyNode(provider, NODE2_PK, 10);
        Invite memory forNode2 = invite(poolId, node2);
        _expectJoinRevert(forNode2, _sel(IPrimeErrors.InvalidInviteSignature.selector));
    }

    function test_Invite_TamperedFields() public {
        Invite memory inv = invite(poolId, node);
        Invite memory longer = Invite(inv.nonce, inv.expiry + 1 days, inv.signature);
        _expectJoinRevert(longer, _sel(IPrimeErrors.InvalidInviteSignature.selector));
        Invite memory otherNonce = Invite(inv.nonce + 1, inv.expiry, inv.signature);
        _expectJoinRevert(otherNonce, _sel(IPrimeErrors.InvalidInviteSignature.selector));
        _join(inv);
    }

    function test_Invite_VoidedByManagerRotation() public {
        Invite memory inv = invite(poolId, node);
        vm.expectEmit(true, true, true, true, address(pools));
        emit IComputePool.ComputePoolManagerUpdated(poolId, manager, stranger);
        vm.prank(federator);
        pools.updateComputeManagerKey(poolId, stranger);
        _expectJoinRevert(inv, _sel(IPrimeErrors.InvalidInviteSignature.selector));
        inv.signature =
            inviteSig(STRANGER_PK, domainId, poolId, node, inv.nonce, inv.expiry, block.chainid, address(pools));
        _join(inv);
    }

    function test_InviteDigestMatchesSpec() public view {
        bytes32 separator = domainSeparator("ComputePool", block.chainid, address(pools));
        assertEq(pools.domainSeparator(), separator, "domain separator");
        bytes32 structHash =
            keccak256(abi.encode(POOL_INVITE_TYPEHASH, uint256(4), uint256(5), node, uint256(6), uint256(7)));
        assertEq(pools.hashPoolInvite(4, 5, node, 6, 7), typedDigest(separator, structHash), "digest");
        assertEq(pools.POOL_INVITE_TYPEHASH(), POOL_INVITE_TYPEHASH, "typehash");
        (, string memory name, string memory version, uint256 chainId, address verifyingContract,,) =
            pools.eip712Domain();
        assertEq(name, "ComputePool", "name");
        assertEq(version, "1", "version");
        assertEq(chainId, block.chainid, "chain id");
        assertEq(verifyingContract, address(pools), "verifying contract");
    }

    // ------------------------------------------------------------------ leaving, ejection, blacklist

    function test_Leave() public {
        _join(invite(poolId, node));
        vm.expectEmit(true, true, true, true, address(pools));
        emit IComputePool.ComputePoolLeft(poolId, provider, node);
        vm.prank(provider);
        pools.leaveComputePool(poolId, provider, node);
        assertFalse(pools.isNodeInPool(poolId, node), "left");
        (bool inPool,) = pools.getNodePool(node);
        assertFalse(inPool, "in no pool");
        assertFalse(registry.getNode(node).isActive, "inactive");
        assertEq(registry.getProvider(provider).activeNodes, 0, "active nodes");
        assertEq(pools.getComputePoolTotalCompute(poolId), 0, "compute released");
        assertEq(pools.getComputePoolNodes(poolId).length, 0, "node list");
    }

    function test_Leave_RevertsNotInPool() public {
        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.NodeNotInPool.selector, poolId, node));
        vm.prank(provider);
        pools.leaveComputePool(poolId, provider, node);

        // In another pool is not in this one.
        vm.prank(federator);
        uint256 other = pools.createComputePool(domainId, manager, "other", "", 0);
        vm.prank(manager);
        pools.startComputePool(other);
        _join(invite(poolId, node));
        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.NodeNotInPool.selector, other, node));
        vm.prank(provider);
        pools.leaveComputePool(other, provider, node);
    }

    function test_Leave_AfterPoolEnded() public {
        _join(invite(poolId, node));
        vm.prank(manager);
        pools.endComputePool(poolId);
        assertTrue(pools.isNodeInPool(poolId, node), "still recorded");
        vm.prank(provider);
        pools.leaveComputePool(poolId, provider, node);
        assertFalse(registry.getNode(node).isActive, "free again");
    }

    function test_Eject_ThenRejoinWithFreshInvite() public {
        Invite memory first = invite(poolId, node);
        _join(first);
        vm.expectEmit(true, true, true, true, address(pools));
        emit IComputePool.ComputePoolNodeEjected(poolId, provider, node);
        vm.prank(manager);
        pools.ejectNode(poolId, node);
        assertFalse(pools.isNodeInPool(poolId, node), "ejected");
        assertFalse(registry.getNode(node).isActive, "inactive");

        _expectJoinRevert(first, abi.encodeWithSelector(IPrimeErrors.InviteAlreadyUsed.selector, poolId, first.nonce));
        _join(invite(poolId, node));
        assertTrue(pools.isNodeInPool(poolId, node), "rejoined");
    }

    function test_Eject_RevertsNotInPool() public {
        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.NodeNotInPool.selector, poolId, node));
        vm.prank(manager);
        pools.ejectNode(poolId, node);
    }

    function test_Blacklist_EjectsAndBlocksRejoin() public {
        _join(invite(poolId, node));
        vm.expectEmit(true, true, true, true, address(pools));
        emit IComputePool.ComputePoolNodeEjected(poolId, provider, node);
        vm.expectEmit(true, true, true, true, address(pools));
        emit IComputePool.ComputePoolNodeBlacklisted(poolId, provider, node);
        vm.prank(manager);
        pools.blacklistNode(poolId, node);
        assertFalse(pools.isNodeInPool(poolId, node), "ejected");
        assertTrue(pools.isNodeBlacklistedFromPool(poolId, node), "blacklisted");

        _expectJoinRevert(
            invite(poolId, node), abi.encodeWithSelector(IPrimeErrors.NodeBlacklistedFromPool.selector, poolId, node)
        );

        // Only this pool: another pool still takes the node.
        vm.prank(federator);
        uint256 other = pools.createComputePool(domainId, manager, "other", "", 0);
        vm.prank(manager);
        pools.startComputePool(other);
        Invite memory inv = invite(other, node);
        vm.prank(provider);
        pools.joinComputePool(other, provider, node, inv.nonce, inv.expiry, inv.signature);
    }

    function test_Blacklist_BeforeJoining() public {
        vm.prank(manager);
        pools.blacklistNode(poolId, node2); // not even registered yet
        readyNode(provider, NODE2_PK, 10);
        Invite memory inv = invite(poolId, node2);
        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.NodeBlacklistedFromPool.selector, poolId, node2));
        vm.prank(provider);
        pools.joinComputePool(poolId, provider, node2, inv.nonce, inv.expiry, inv.signature);
    }
}
