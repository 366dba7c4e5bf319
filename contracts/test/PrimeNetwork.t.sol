// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IERC20Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";
import {ComputePool} from "../src/ComputePool.sol";
import {ComputeRegistry} from "../src/ComputeRegistry.sol";
import {DomainRegistry} from "../src/DomainRegistry.sol";
import {PrimeNetwork} from "../src/PrimeNetwork.sol";
import {StakeManager} from "../src/StakeManager.sol";
import {IComputeRegistry} from "../src/interfaces/IComputeRegistry.sol";
import {IPrimeErrors} from "../src/interfaces/IPrimeErrors.sol";
import {IPrimeNetwork} from "../src/interfaces/IPrimeNetwork.sol";
import {IStakeManager} from "../src/interfaces/IStakeManager.sol";
import {TestBase} from "./utils/TestBase.sol";

/// @notice Providers, stake, node-key signatures, validation and removal.
contract PrimeNetworkTest is TestBase {
    // ------------------------------------------------------------------ registration

    function test_RegisterProvider() public {
        vm.expectEmit(true, true, true, true, address(stakes));
        emit IStakeManager.Staked(provider, 2 ether, 2 ether);
        vm.expectEmit(true, true, true, true, address(network));
        emit IPrimeNetwork.ProviderRegistered(provider, 2 ether);
        register(provider, 2 ether);

        IComputeRegistry.ProviderInfo memory info = registry.getProvider(provider);
        assertTrue(info.isRegistered, "registered");
        assertFalse(info.isWhitelisted, "new providers are not whitelisted");
        assertEq(stakes.getStake(provider), 2 ether, "stake");
        assertEq(token.balanceOf(address(stakes)), 2 ether, "tokens held by StakeManager");
        assertEq(token.balanceOf(provider), 998 ether, "tokens left the provider");
    }

    function test_RegisterProvider_RevertsBelowMinimum() public {
        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.StakeBelowMinimum.selector, MIN_PER_UNIT - 1, MIN_PER_UNIT));
        register(provider, MIN_PER_UNIT - 1);
    }

    function test_RegisterProvider_RevertsTwice() public {
        register(provider, 1 ether);
        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.ProviderAlreadyRegistered.selector, provider));
        register(provider, 1 ether);
    }

    function test_RegisterProvider_RevertsWithoutAllowance() public {
        address poor = vm.addr(0x9999);
        token.mint(poor, 1 ether);
        vm.expectRevert(
            abi.encodeWithSelector(IERC20Errors.ERC20InsufficientAllowance.selector, address(network), 0, 1 ether)
        );
        register(poor, 1 ether);
    }

    function test_RegisterProviderWithPermit() public {
        uint256 pk = 0x5151;
        address who = vm.addr(pk);
        token.mint(who, 3 ether);
        uint256 deadline = block.timestamp + 1 hours;
        bytes32 structHash = keccak256(
            abi.encode(
                keccak256("Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)"),
                who,
                address(network),
                3 ether,
                token.nonces(who),
                deadline
            )
        );
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(pk, typedDigest(token.DOMAIN_SEPARATOR(), structHash));
        vm.prank(who);
        network.registerProviderWithPermit(3 ether, deadline, v, r, s);
        assertEq(stakes.getStake(who), 3 ether, "registered in one transaction");
    }

    // ------------------------------------------------------------------ whitelist

    function test_Whitelist_RevertsUnregistered() public {
        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.ProviderNotRegistered.selector, stranger));
        whitelist(stranger);
    }

    function test_WhitelistEvents() public {
        register(provider, 1 ether);
        vm.expectEmit(true, true, true, true, address(network));
        emit IPrimeNetwork.ProviderWhitelisted(provider);
        whitelist(provider);
        vm.expectEmit(true, true, true, true, address(network));
        emit IPrimeNetwork.ProviderBlacklisted(provider);
        vm.prank(validator);
        network.blacklistProvider(provider);
    }

    // ------------------------------------------------------------------ compute nodes

    function test_AddComputeNode() public {
        register(provider, 1 ether);
        whitelist(provider);
        assertEq(network.nodeKeyNonce(node), 0, "fresh nonce");
        bytes memory sig = nodeKeySig(NODE_PK, provider);

        vm.expectEmit(true, true, true, true, address(network));
        emit IPrimeNetwork.ComputeNodeAdded(provider, node, 10, "ipfs://specs");
        vm.prank(provider);
        network.addComputeNode(node, "ipfs://specs", 10, sig);

        IComputeRegistry.ComputeNode memory n = registry.getNode(node);
        assertEq(n.provider, provider, "provider");
        assertEq(n.node, node, "node");
        assertEq(n.computeUnits, 10, "units");
        assertEq(n.specsURI, "ipfs://specs", "specs");
        assertFalse(n.isActive, "inactive");
        assertFalse(n.isValidated, "unvalidated");
        assertEq(registry.getNodeProvider(node), provider, "node provider");
        assertEq(registry.getProviderTotalCompute(provider), 10, "total compute");
        assertEq(registry.getProviderNodes(provider).length, 1, "node list");
        assertEq(network.nodeKeyNonce(node), 1, "nonce consumed");
    }

    function test_AddComputeNode_RevertsNotRegistered() public {
        bytes memory sig = nodeKeySig(NODE_PK, stranger);
        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.ProviderNotRegistered.selector, stranger));
        vm.prank(stranger);
        network.addComputeNode(node, "", 1, sig);
    }

    function test_AddComputeNode_RevertsNotWhitelisted() public {
        register(provider, 1 ether);
        bytes memory sig = nodeKeySig(NODE_PK, provider);
        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.ProviderNotWhitelisted.selector, provider));
        vm.prank(provider);
        network.addComputeNode(node, "", 1, sig);
    }

    function test_AddComputeNode_RevertsBlacklisted() public {
        register(provider, 1 ether);
        whitelist(provider);
        vm.prank(validator);
        network.blacklistProvider(provider);
        bytes memory sig = nodeKeySig(NODE_PK, provider);
        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.ProviderNotWhitelisted.selector, provider));
        vm.prank(provider);
        network.addComputeNode(node, "", 1, sig);
    }

    function test_AddComputeNode_RevertsStakeBelowMinimum() public {
        register(provider, 10 * MIN_PER_UNIT);
        whitelist(provider);
        addNode(provider, NODE_PK, 4);
        // 4 units held; 7 more need 11 units' worth, 10 are staked.
        bytes memory sig = nodeKeySig(NODE2_PK, provider);
        vm.expectRevert(
            abi.encodeWithSelector(IPrimeErrors.StakeBelowMinimum.selector, 10 * MIN_PER_UNIT, 11 * MIN_PER_UNIT)
        );
        vm.prank(provider);
        network.addComputeNode(node2, "", 7, sig);
        assertEq(network.calculateMinimumStake(provider, 7), 11 * MIN_PER_UNIT, "formula");
        addNode(provider, NODE2_PK, 6); // exactly at the minimum is enough
    }

    function test_AddComputeNode_RevertsBadComputeUnits() public {
        register(provider, 1 ether);
        whitelist(provider);
        bytes memory sig = nodeKeySig(NODE_PK, provider);
        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.InvalidComputeUnits.selector, 0));
        vm.prank(provider);
        network.addComputeNode(node, "", 0, sig);

        uint256 tooMany = uint256(type(uint32).max) + 1;
        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.InvalidComputeUnits.selector, tooMany));
        vm.prank(provider);
        network.addComputeNode(node, "", tooMany, sig);
        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.InvalidComputeUnits.selector, type(uint256).max));
        vm.prank(provider);
        network.addComputeNode(node, "", type(uint256).max, sig);
    }

    function test_AddComputeNode_RevertsAlreadyRegistered() public {
        readyNode(provider, NODE_PK, 1);
        register(provider2, 1 ether);
        whitelist(provider2);
        // A perfectly valid signature (the node key agrees) does not move a registered node.
        bytes memory sig = nodeKeySig(NODE_PK, provider2);
        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.NodeAlreadyRegistered.selector, node));
        vm.prank(provider2);
        network.addComputeNode(node, "", 1, sig);
    }

    function test_AddComputeNode_RevertsForgedSignature() public {
        register(provider, 1 ether);
        whitelist(provider);
        // Signed by a key that is not the node key.
        bytes memory forged = nodeKeySig(STRANGER_PK, provider);
        vm.expectRevert(IPrimeErrors.InvalidNodeSignature.selector);
        vm.prank(provider);
        network.addComputeNode(node, "", 1, forged);

        // Garbage and empty signatures.
        vm.expectRevert(IPrimeErrors.InvalidNodeSignature.selector);
        vm.prank(provider);
        network.addComputeNode(node, "", 1, hex"1234");
        vm.expectRevert(IPrimeErrors.InvalidNodeSignature.selector);
        vm.prank(provider);
        network.addComputeNode(node, "", 1, "");
    }

    function test_AddComputeNode_RevertsSignatureForAnotherProvider() public {
        register(provider, 1 ether);
        whitelist(provider);
        bytes memory sig = nodeKeySig(NODE_PK, provider2);
        vm.expectRevert(IPrimeErrors.InvalidNodeSignature.selector);
        vm.prank(provider);
        network.addComputeNode(node, "", 1, sig);
    }

    function test_AddComputeNode_RevertsReplayedSignature() public {
        register(provider, 1 ether);
        whitelist(provider);
        bytes memory sig = nodeKeySig(NODE_PK, provider);
        vm.prank(provider);
        network.addComputeNode(node, "", 1, sig);
        vm.prank(provider);
        network.removeComputeNode(provider, node);

        // The same signature again: its nonce was consumed.
        vm.expectRevert(IPrimeErrors.InvalidNodeSignature.selector);
        vm.prank(provider);
        network.addComputeNode(node, "", 1, sig);

        // A signature for the old nonce, made afresh, fails too; one for the current nonce works.
        bytes memory old = nodeKeySig(NODE_PK, provider, 0, block.chainid, address(network));
        vm.expectRevert(IPrimeErrors.InvalidNodeSignature.selector);
        vm.prank(provider);
        network.addComputeNode(node, "", 1, old);
        addNode(provider, NODE_PK, 1);
        assertEq(network.nodeKeyNonce(node), 2, "second nonce consumed");
    }

    function test_AddComputeNode_RevertsSignatureForAnotherChain() public {
        register(provider, 1 ether);
        whitelist(provider);
        bytes memory otherChain = nodeKeySig(NODE_PK, provider, 0, block.chainid + 1, address(network));
        vm.expectRevert(IPrimeErrors.InvalidNodeSignature.selector);
        vm.prank(provider);
        network.addComputeNode(node, "", 1, otherChain);

        // Signed here, submitted after a chain-id change (a fork): the domain separator follows the chain.
        bytes memory here = nodeKeySig(NODE_PK, provider);
        vm.chainId(block.chainid + 7);
        vm.expectRevert(IPrimeErrors.InvalidNodeSignature.selector);
        vm.prank(provider);
        network.addComputeNode(node, "", 1, here);
    }

    function test_AddComputeNode_RevertsSignatureForAnotherDeployment() public {
        (, PrimeNetwork other,,,,) = deploy();
        register(provider, 1 ether);
        whitelist(provider);
        bytes memory forOther = nodeKeySig(NODE_PK, provider, 0, block.chainid, address(other));
        vm.expectRevert(IPrimeErrors.InvalidNodeSignature.selector);
        vm.prank(provider);
        network.addComputeNode(node, "", 1, forOther);
    }

    function test_NodeKeyDigestMatchesSpec() public view {
        bytes32 separator = domainSeparator("PrimeNetwork", block.chainid, address(network));
        assertEq(network.domainSeparator(), separator, "domain separator");
        bytes32 structHash = keccak256(abi.encode(NODE_KEY_TYPEHASH, provider, node, uint256(3)));
        assertEq(network.hashNodeKey(provider, node, 3), typedDigest(separator, structHash), "digest");
        assertEq(network.NODE_KEY_TYPEHASH(), NODE_KEY_TYPEHASH, "typehash");

        (, string memory name, string memory version, uint256 chainId, address verifyingContract,,) =
            network.eip712Domain();
        assertEq(name, "PrimeNetwork", "name");
        assertEq(version, "1", "version");
        assertEq(chainId, block.chainid, "chain id");
        assertEq(verifyingContract, address(network), "verifying contract");
    }

    // ------------------------------------------------------------------ validation

    function test_ValidateNode_Events() public {
        register(provider, 1 ether);
        whitelist(provider);
        addNode(provider, NODE_PK, 10);
        vm.expectEmit(true, true, true, true, address(network));
        emit IPrimeNetwork.ComputeNodeValidated(provider, node);
        validate(provider, node);
        vm.expectEmit(true, true, true, true, address(network));
        emit IPrimeNetwork.ComputeNodeInvalidated(provider, node);
        vm.prank(validator);
        network.invalidateNode(provider, node);
    }

    function test_ValidateNode_RevertsUnknownNode() public {
        register(provider, 1 ether);
        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.UnknownNode.selector, node));
        validate(provider, node);
    }

    function test_ValidateNode_RevertsWrongProvider() public {
        readyNode(provider, NODE_PK, 1);
        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.NodeNotOwnedBy.selector, node, provider2));
        validate(provider2, node);
    }

    function test_ValidateNode_RevertsAfterSlashBelowMinimum() public {
        register(provider, 10 * MIN_PER_UNIT);
        whitelist(provider);
        addNode(provider, NODE_PK, 10);
        vm.prank(slasher);
        network.slash(provider, 1, "below minimum");
        vm.expectRevert(
            abi.encodeWithSelector(IPrimeErrors.StakeBelowMinimum.selector, 10 * MIN_PER_UNIT - 1, 10 * MIN_PER_UNIT)
        );
        validate(provider, node);
    }

    function test_GetNode_RevertsUnknownNode() public {
        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.UnknownNode.selector, node));
        registry.getNode(node);
        assertFalse(registry.nodeExists(node), "exists");
        assertEq(registry.getNodeProvider(node), address(0), "no provider");
    }

    // ------------------------------------------------------------------ removal

    function test_RemoveComputeNode() public {
        readyNode(provider, NODE_PK, 10);
        vm.expectEmit(true, true, true, true, address(network));
        emit IPrimeNetwork.ComputeNodeRemoved(provider, node);
        vm.prank(provider);
        network.removeComputeNode(provider, node);
        assertFalse(registry.nodeExists(node), "gone");
        assertEq(registry.getProviderTotalCompute(provider), 0, "compute released");
        assertEq(registry.getProviderNodes(provider).length, 0, "node list");
    }

    function test_RemoveComputeNode_RevertsUnknownNode() public {
        register(provider, 1 ether);
        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.UnknownNode.selector, node));
        vm.prank(provider);
        network.removeComputeNode(provider, node);
    }

    function test_RemoveComputeNode_RevertsForeignNode() public {
        readyNode(provider, NODE_PK, 1);
        register(provider2, 1 ether);
        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.NodeNotOwnedBy.selector, node, provider2));
        vm.prank(provider2);
        network.removeComputeNode(provider2, node);
    }

    function test_RemoveComputeNode_RevertsWhileInPool() public {
        uint256 poolId = activePool(0);
        readyNode(provider, NODE_PK, 1);
        join(poolId, provider, node);
        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.NodeStillInPool.selector, node, poolId));
        vm.prank(provider);
        network.removeComputeNode(provider, node);
        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.NodeStillInPool.selector, node, poolId));
        vm.prank(validator);
        network.removeComputeNode(provider, node);
    }

    // ------------------------------------------------------------------ stake changes

    function test_IncreaseStake() public {
        register(provider, 1 ether);
        vm.prank(provider);
        network.increaseStake(2 ether);
        assertEq(stakes.getStake(provider), 3 ether, "stake");

        vm.expectRevert(IPrimeErrors.ZeroAmount.selector);
        vm.prank(provider);
        network.increaseStake(0);
        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.ProviderNotRegistered.selector, stranger));
        vm.prank(stranger);
        network.increaseStake(1 ether);
    }

    function test_ReclaimStake_OnlyTheExcess() public {
        register(provider, 100 * MIN_PER_UNIT);
        whitelist(provider);
        addNode(provider, NODE_PK, 60);
        assertEq(network.getReclaimableStake(provider), 40 * MIN_PER_UNIT, "reclaimable");

        vm.expectRevert(
            abi.encodeWithSelector(IPrimeErrors.ReclaimExceedsExcess.selector, 40 * MIN_PER_UNIT + 1, 40 * MIN_PER_UNIT)
        );
        vm.prank(provider);
        network.reclaimStake(40 * MIN_PER_UNIT + 1);
        vm.expectRevert(IPrimeErrors.ZeroAmount.selector);
        vm.prank(provider);
        network.reclaimStake(0);

        vm.expectEmit(true, true, true, true, address(stakes));
        emit IStakeManager.UnbondingStarted(provider, 40 * MIN_PER_UNIT, block.timestamp + UNBONDING);
        vm.prank(provider);
        network.reclaimStake(40 * MIN_PER_UNIT);
        assertEq(stakes.getStake(provider), 60 * MIN_PER_UNIT, "stake left");
        assertEq(stakes.getUnbondingTotal(provider), 40 * MIN_PER_UNIT, "unbonding");
        assertEq(network.getReclaimableStake(provider), 0, "nothing more");
    }

    function test_ReclaimStake_UnregisteredHasNothing() public {
        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.ReclaimExceedsExcess.selector, 1, 0));
        vm.prank(stranger);
        network.reclaimStake(1);
    }

    // ------------------------------------------------------------------ wiring

    function test_NotWired() public {
        PrimeNetwork n = new PrimeNetwork(federator, validator, address(token));
        vm.expectRevert(IPrimeErrors.NotWired.selector);
        vm.prank(provider);
        n.registerProvider(1 ether);
        vm.expectRevert(IPrimeErrors.NotWired.selector);
        vm.prank(federator);
        n.createDomain("d", "");
    }

    function test_SetModules_RevertsTwice() public {
        vm.expectRevert(IPrimeErrors.AlreadyWired.selector);
        network.setModules(registry, domains, stakes, pools);
    }

    function test_SetModules_RevertsOnForeignModules() public {
        PrimeNetwork n = new PrimeNetwork(federator, validator, address(token));
        ComputeRegistry r = new ComputeRegistry(address(n));
        DomainRegistry d = new DomainRegistry(address(n));
        StakeManager s = new StakeManager(address(n), address(token), UNBONDING);
        ComputePool p = new ComputePool(address(n), address(r), address(d), address(s));

        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.ModuleMismatch.selector, address(registry)));
        n.setModules(registry, d, s, p);
        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.ModuleMismatch.selector, address(domains)));
        n.setModules(r, domains, s, p);
        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.ModuleMismatch.selector, address(stakes)));
        n.setModules(r, d, stakes, p);
        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.ModuleMismatch.selector, address(pools)));
        n.setModules(r, d, s, pools);

        // A stake manager on another token, a pool wired to other registries.
        StakeManager otherToken = new StakeManager(address(n), address(0xBEEF), UNBONDING);
        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.ModuleMismatch.selector, address(otherToken)));
        n.setModules(r, d, otherToken, p);
        ComputePool crossed = new ComputePool(address(n), address(r), address(domains), address(s));
        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.ModuleMismatch.selector, address(crossed)));
        n.setModules(r, d, s, crossed);

        n.setModules(r, d, s, p);
    }

    function test_Constructors_RejectZeroAddresses() public {
        vm.expectRevert(IPrimeErrors.ZeroAddress.selector);
        new PrimeNetwork(address(0), validator, address(token));
        vm.expectRevert(IPrimeErrors.ZeroAddress.selector);
        new ComputeRegistry(address(0));
        vm.expectRevert(IPrimeErrors.ZeroAddress.selector);
        new DomainRegistry(address(0));
        vm.expectRevert(IPrimeErrors.ZeroAddress.selector);
        new StakeManager(address(network), address(0), 1);
        vm.expectRevert(IPrimeErrors.ZeroAddress.selector);
        new ComputePool(address(network), address(0), address(domains), address(stakes));
        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.InvalidUnbondingPeriod.selector, 366 days));
        new StakeManager(address(network), address(token), 366 days);
    }
}
