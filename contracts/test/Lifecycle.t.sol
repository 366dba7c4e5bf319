// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IComputePool} from "../src/interfaces/IComputePool.sol";
import {IPrimeNetwork} from "../src/interfaces/IPrimeNetwork.sol";
import {IStakeManager} from "../src/interfaces/IStakeManager.sol";
import {TestBase} from "./utils/TestBase.sol";

/// @notice The whole provider/node/pool lifecycle, step by step, as the services drive it, with the
/// events each step emits (what the Python services watch).
contract LifecycleTest is TestBase {
    function test_FullLifecycle() public {
        uint256 units = 1000;
        uint256 stake = units * MIN_PER_UNIT + 0.5 ether; // a little above the minimum

        // Operator: domain and pool, started by the orchestrator's manager key.
        vm.expectEmit(true, true, true, true, address(network));
        emit IPrimeNetwork.DomainCreated(0, "inference", "ipfs://domain");
        uint256 domainId = createDomain();
        vm.prank(federator);
        uint256 poolId = pools.createComputePool(domainId, manager, "demo", "gpu:count>=1", 0);
        vm.expectEmit(true, true, true, true, address(pools));
        emit IComputePool.ComputePoolStarted(poolId, block.timestamp);
        vm.prank(manager);
        pools.startComputePool(poolId);

        // 1. Provider registers with stake (approve was done in setUp).
        vm.expectEmit(true, true, true, true, address(network));
        emit IPrimeNetwork.ProviderRegistered(provider, stake);
        register(provider, stake);

        // 2. Whitelisted by the validator.
        vm.expectEmit(true, true, true, true, address(network));
        emit IPrimeNetwork.ProviderWhitelisted(provider);
        whitelist(provider);

        // 3. Node added with the node key's EIP-712 signature.
        bytes memory nodeSig = nodeKeySig(NODE_PK, provider);
        vm.expectEmit(true, true, true, true, address(network));
        emit IPrimeNetwork.ComputeNodeAdded(provider, node, units, "ipfs://specs");
        vm.prank(provider);
        network.addComputeNode(node, "ipfs://specs", units, nodeSig);

        // 4. Validated.
        vm.expectEmit(true, true, true, true, address(network));
        emit IPrimeNetwork.ComputeNodeValidated(provider, node);
        validate(provider, node);

        // 5. Invited and joined.
        Invite memory first = invite(poolId, node);
        vm.expectEmit(true, true, true, true, address(pools));
        emit IComputePool.ComputePoolJoined(poolId, provider, node, units);
        vm.prank(provider);
        pools.joinComputePool(poolId, provider, node, first.nonce, first.expiry, first.signature);
        assertTrue(registry.getNode(node).isActive, "active after join");

        // 6. Ejected (e.g. missed heartbeats).
        vm.warp(block.timestamp + 10 minutes);
        vm.expectEmit(true, true, true, true, address(pools));
        emit IComputePool.ComputePoolNodeEjected(poolId, provider, node);
        vm.prank(manager);
        pools.ejectNode(poolId, node);
        assertFalse(registry.getNode(node).isActive, "inactive after eject");

        // 7. Rejoins with a fresh invite.
        Invite memory second = invite(poolId, node);
        vm.prank(provider);
        pools.joinComputePool(poolId, provider, node, second.nonce, second.expiry, second.signature);
        assertTrue(pools.isNodeInPool(poolId, node), "rejoined");

        // 8. Leaves.
        vm.expectEmit(true, true, true, true, address(pools));
        emit IComputePool.ComputePoolLeft(poolId, provider, node);
        vm.prank(provider);
        pools.leaveComputePool(poolId, provider, node);

        // 9. Removes the node.
        vm.expectEmit(true, true, true, true, address(network));
        emit IPrimeNetwork.ComputeNodeRemoved(provider, node);
        vm.prank(provider);
        network.removeComputeNode(provider, node);
        assertEq(network.calculateMinimumStake(provider, 0), 0, "no compute, no minimum");

        // 10. Reclaims all stake; it unbonds.
        uint256 releaseTime = block.timestamp + UNBONDING;
        vm.expectEmit(true, true, true, true, address(stakes));
        emit IStakeManager.UnbondingStarted(provider, stake, releaseTime);
        vm.prank(provider);
        network.reclaimStake(stake);
        assertEq(stakes.getStake(provider), 0, "stake unbonding");

        // 11. Withdraws after the unbonding period, not before.
        vm.warp(releaseTime - 1);
        assertEq(stakes.getWithdrawable(provider), 0, "not yet");
        vm.warp(releaseTime);
        vm.expectEmit(true, true, true, true, address(stakes));
        emit IStakeManager.Withdrawn(provider, stake);
        vm.prank(provider);
        stakes.withdraw();
        assertEq(token.balanceOf(provider), 1_000 ether, "every token back");

        // The pool ends; it is empty and nobody can join any more.
        vm.expectEmit(true, true, true, true, address(pools));
        emit IComputePool.ComputePoolEnded(poolId, block.timestamp);
        vm.prank(manager);
        pools.endComputePool(poolId);
        assertEq(pools.getComputePool(poolId).nodeCount, 0, "empty");
    }
}
