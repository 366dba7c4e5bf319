// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {ComputePool} from "../src/ComputePool.sol";
import {ComputeRegistry} from "../src/ComputeRegistry.sol";
import {DomainRegistry} from "../src/DomainRegistry.sol";
import {PrimeNetwork} from "../src/PrimeNetwork.sol";
import {StakeManager} from "../src/StakeManager.sol";
import {IPrimeErrors} from "../src/interfaces/IPrimeErrors.sol";
import {TestBase} from "./utils/TestBase.sol";

/// @notice For every privileged function: the holder succeeds and a non-holder reverts with the
/// documented error.
contract AccessTest is TestBase {
    bytes32 internal FEDERATOR_ROLE;
    bytes32 internal VALIDATOR_ROLE;
    bytes32 internal constant DEFAULT_ADMIN_ROLE = 0x00;

    function setUp() public override {
        super.setUp();
        FEDERATOR_ROLE = network.FEDERATOR_ROLE();
        VALIDATOR_ROLE = network.VALIDATOR_ROLE();
    }

    // ------------------------------------------------------------------ roles at deployment

    function test_RolesAfterDeployment() public view {
        assertTrue(network.hasRole(DEFAULT_ADMIN_ROLE, address(this)), "deployer is admin");
        assertTrue(network.hasRole(FEDERATOR_ROLE, federator), "federator role");
        assertTrue(network.hasRole(VALIDATOR_ROLE, validator), "validator role");
        assertFalse(network.hasRole(VALIDATOR_ROLE, federator), "federator is not a validator");
        assertEq(network.getRoleAdmin(VALIDATOR_ROLE), FEDERATOR_ROLE, "validator role admin");
        assertEq(network.getRoleAdmin(FEDERATOR_ROLE), DEFAULT_ADMIN_ROLE, "federator role admin");
        assertTrue(token.hasRole(token.MINTER_ROLE(), address(this)), "deployer mints");
    }

    function test_FederatorGrantsValidatorRole() public {
        vm.expectRevert(unauthorized(stranger, FEDERATOR_ROLE));
        vm.prank(stranger);
        network.grantRole(VALIDATOR_ROLE, stranger);

        vm.prank(federator);
        network.grantRole(VALIDATOR_ROLE, stranger);
        assertTrue(network.hasRole(VALIDATOR_ROLE, stranger), "granted");
    }

    // ------------------------------------------------------------------ AIToken

    function test_Mint() public {
        token.mint(stranger, 5);
        assertEq(token.balanceOf(stranger), 1_000 ether + 5, "minted");

        vm.expectRevert(unauthorized(stranger, token.MINTER_ROLE()));
        vm.prank(stranger);
        token.mint(stranger, 5);
    }

    // ------------------------------------------------------------------ PrimeNetwork: admin

    function test_SetModules() public {
        PrimeNetwork n = new PrimeNetwork(federator, validator, address(token));
        ComputeRegistry r = new ComputeRegistry(address(n));
        DomainRegistry d = new DomainRegistry(address(n));
        StakeManager s = new StakeManager(address(n), address(token), UNBONDING);
        ComputePool p = new ComputePool(address(n), address(r), address(d), address(s));

        vm.expectRevert(unauthorized(federator, DEFAULT_ADMIN_ROLE));
        vm.prank(federator);
        n.setModules(r, d, s, p);

        n.setModules(r, d, s, p);
        assertEq(address(n.computePool()), address(p), "wired");
        assertEq(r.computePool(), address(p), "registry knows the pool");
    }

    // ------------------------------------------------------------------ PrimeNetwork: federator

    function test_SetStakeMinimum() public {
        vm.prank(federator);
        network.setStakeMinimum(7);
        assertEq(stakes.getStakeMinimum(), 7, "minimum");

        vm.expectRevert(unauthorized(validator, FEDERATOR_ROLE));
        vm.prank(validator);
        network.setStakeMinimum(8);
    }

    function test_SetUnbondingPeriod() public {
        vm.prank(federator);
        network.setUnbondingPeriod(1 days);
        assertEq(stakes.getUnbondingPeriod(), 1 days, "period");

        vm.expectRevert(unauthorized(stranger, FEDERATOR_ROLE));
        vm.prank(stranger);
        network.setUnbondingPeriod(2 days);
    }

    function test_CreateDomain() public {
        vm.prank(federator);
        assertEq(network.createDomain("a", "uri"), 0, "first id");

        vm.expectRevert(unauthorized(validator, FEDERATOR_ROLE));
        vm.prank(validator);
        network.createDomain("b", "uri");
    }

    // ------------------------------------------------------------------ PrimeNetwork: federator or validator

    function test_WhitelistAndBlacklistProvider() public {
        register(provider, 1 ether);

        vm.prank(validator);
        network.whitelistProvider(provider);
        assertTrue(registry.isProviderWhitelisted(provider), "validator whitelists");
        vm.prank(validator);
        network.blacklistProvider(provider);
        assertFalse(registry.isProviderWhitelisted(provider), "validator blacklists");

        vm.prank(federator);
        network.whitelistProvider(provider);
        assertTrue(registry.isProviderWhitelisted(provider), "federator whitelists");
        vm.prank(federator);
        network.blacklistProvider(provider);
        assertFalse(registry.isProviderWhitelisted(provider), "federator blacklists");

        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.NotFederatorOrValidator.selector, stranger));
        vm.prank(stranger);
        network.whitelistProvider(provider);
        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.NotFederatorOrValidator.selector, provider));
        vm.prank(provider);
        network.whitelistProvider(provider);
        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.NotFederatorOrValidator.selector, stranger));
        vm.prank(stranger);
        network.blacklistProvider(provider);
    }

    // ------------------------------------------------------------------ PrimeNetwork: validator

    function test_ValidateAndInvalidateNode() public {
        register(provider, 1 ether);
        whitelist(provider);
        addNode(provider, NODE_PK, 10);

        vm.expectRevert(unauthorized(federator, VALIDATOR_ROLE));
        vm.prank(federator);
        network.validateNode(provider, node);

        vm.prank(validator);
        network.validateNode(provider, node);
        assertTrue(registry.getNode(node).isValidated, "validated");

        vm.expectRevert(unauthorized(provider, VALIDATOR_ROLE));
        vm.prank(provider);
        network.invalidateNode(provider, node);

        vm.prank(validator);
        network.invalidateNode(provider, node);
        assertFalse(registry.getNode(node).isValidated, "invalidated");
    }

    function test_Slash_OnlySlasherRole_PaysTheTreasury() public {
        register(provider, 1 ether);
        bytes32 slasherRole = network.SLASHER_ROLE();

        vm.expectRevert(unauthorized(federator, slasherRole));
        vm.prank(federator);
        network.slash(provider, 1, "bad work");
        vm.expectRevert(unauthorized(validator, slasherRole));
        vm.prank(validator);
        network.slash(provider, 1, "bad work");

        vm.prank(slasher);
        assertEq(network.slash(provider, 0.25 ether, "bad work"), 0.25 ether, "slashed");
        assertEq(token.balanceOf(treasury), 0.25 ether, "the treasury receives the slash");
        assertEq(token.balanceOf(slasher), 0, "the slasher does not");
    }

    function test_RemoveComputeNode_ProviderOrValidator() public {
        register(provider, 1 ether);
        whitelist(provider);
        addNode(provider, NODE_PK, 10);
        addNode(provider, NODE2_PK, 10);

        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.CallerNotProvider.selector, stranger, provider));
        vm.prank(stranger);
        network.removeComputeNode(provider, node);
        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.CallerNotProvider.selector, federator, provider));
        vm.prank(federator);
        network.removeComputeNode(provider, node);

        vm.prank(provider);
        network.removeComputeNode(provider, node);
        vm.prank(validator);
        network.removeComputeNode(provider, node2);
        assertEq(registry.getProvider(provider).nodeCount, 0, "both removed");
    }

    // ------------------------------------------------------------------ ComputePool

    function test_CreateComputePool() public {
        uint256 domainId = createDomain();

        vm.expectRevert(unauthorized(validator, FEDERATOR_ROLE));
        vm.prank(validator);
        pools.createComputePool(domainId, manager, "p", "", 0);
        vm.expectRevert(unauthorized(manager, FEDERATOR_ROLE));
        vm.prank(manager);
        pools.createComputePool(domainId, manager, "p", "", 0);

        vm.prank(federator);
        assertEq(pools.createComputePool(domainId, manager, "p", "", 0), 0, "first pool id");
        assertEq(pools.getComputePool(0).creator, federator, "creator");
    }

    function _pendingPool() internal returns (uint256 poolId) {
        uint256 domainId = createDomain();
        vm.prank(federator);
        poolId = pools.createComputePool(domainId, manager, "p", "", 0);
    }

    function _notOwner(uint256 poolId, address who) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(IPrimeErrors.NotPoolCreatorOrManager.selector, poolId, who);
    }

    function test_StartComputePool_CreatorOrManager() public {
        uint256 a = _pendingPool();
        vm.prank(federator);
        uint256 b = pools.createComputePool(0, manager, "p2", "", 0);

        vm.expectRevert(_notOwner(a, stranger));
        vm.prank(stranger);
        pools.startComputePool(a);
        vm.expectRevert(_notOwner(a, validator));
        vm.prank(validator);
        pools.startComputePool(a);

        vm.prank(federator); // creator
        pools.startComputePool(a);
        vm.prank(manager);
        pools.startComputePool(b);
    }

    function test_EndComputePool_CreatorOrManager() public {
        uint256 a = _pendingPool();
        vm.prank(federator);
        uint256 b = pools.createComputePool(0, manager, "p2", "", 0);

        vm.expectRevert(_notOwner(a, stranger));
        vm.prank(stranger);
        pools.endComputePool(a);

        vm.prank(federator);
        pools.endComputePool(a);
        vm.prank(manager);
        pools.endComputePool(b);
    }

    function test_UpdatePool_CreatorOrManager() public {
        uint256 poolId = _pendingPool();

        vm.expectRevert(_notOwner(poolId, stranger));
        vm.prank(stranger);
        pools.updateComputePoolURI(poolId, "x");
        vm.expectRevert(_notOwner(poolId, stranger));
        vm.prank(stranger);
        pools.updateComputeLimit(poolId, 1);
        vm.expectRevert(_notOwner(poolId, stranger));
        vm.prank(stranger);
        pools.updateComputeManagerKey(poolId, stranger);

        vm.prank(manager);
        pools.updateComputePoolURI(poolId, "gpu:count>=2");
        vm.prank(federator);
        pools.updateComputeLimit(poolId, 100);
        assertEq(pools.getComputePool(poolId).poolDataURI, "gpu:count>=2", "uri");
        assertEq(pools.getComputePool(poolId).computeLimit, 100, "limit");

        vm.prank(manager);
        pools.updateComputeManagerKey(poolId, validator);
        assertEq(pools.getComputePool(poolId).computeManagerKey, validator, "rotated");
        // The old manager lost its powers; the creator keeps them.
        vm.expectRevert(_notOwner(poolId, manager));
        vm.prank(manager);
        pools.updateComputeLimit(poolId, 1);
        vm.prank(federator);
        pools.updateComputeManagerKey(poolId, manager);
    }

    function test_EjectNode_CreatorOrManager() public {
        uint256 poolId = activePool(0);
        readyNode(provider, NODE_PK, 10);
        readyNode(provider, NODE2_PK, 10);
        join(poolId, provider, node);
        join(poolId, provider, node2);

        vm.expectRevert(_notOwner(poolId, stranger));
        vm.prank(stranger);
        pools.ejectNode(poolId, node);
        vm.expectRevert(_notOwner(poolId, provider));
        vm.prank(provider);
        pools.ejectNode(poolId, node);
        vm.expectRevert(_notOwner(poolId, validator));
        vm.prank(validator);
        pools.ejectNode(poolId, node);

        vm.prank(manager);
        pools.ejectNode(poolId, node);
        vm.prank(federator);
        pools.ejectNode(poolId, node2);
        assertEq(pools.getComputePool(poolId).nodeCount, 0, "both ejected");
    }

    function test_BlacklistNode_CreatorOrManager() public {
        uint256 poolId = activePool(0);

        vm.expectRevert(_notOwner(poolId, stranger));
        vm.prank(stranger);
        pools.blacklistNode(poolId, node);

        vm.prank(manager);
        pools.blacklistNode(poolId, node);
        vm.prank(federator);
        pools.blacklistNode(poolId, node2);
        assertTrue(pools.isNodeBlacklistedFromPool(poolId, node), "node");
        assertTrue(pools.isNodeBlacklistedFromPool(poolId, node2), "node2");
    }

    function test_JoinAndLeave_OnlyTheProvider() public {
        uint256 poolId = activePool(0);
        readyNode(provider, NODE_PK, 10);
        Invite memory inv = invite(poolId, node);

        // Someone else cannot submit the provider's invite, neither in its own name nor in the provider's.
        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.CallerNotProvider.selector, stranger, provider));
        vm.prank(stranger);
        pools.joinComputePool(poolId, provider, node, inv.nonce, inv.expiry, inv.signature);
        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.NodeNotOwnedBy.selector, node, stranger));
        vm.prank(stranger);
        pools.joinComputePool(poolId, stranger, node, inv.nonce, inv.expiry, inv.signature);

        vm.prank(provider);
        pools.joinComputePool(poolId, provider, node, inv.nonce, inv.expiry, inv.signature);

        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.CallerNotProvider.selector, manager, provider));
        vm.prank(manager);
        pools.leaveComputePool(poolId, provider, node);
        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.NodeNotOwnedBy.selector, node, stranger));
        vm.prank(stranger);
        pools.leaveComputePool(poolId, stranger, node);

        vm.prank(provider);
        pools.leaveComputePool(poolId, provider, node);
        assertFalse(pools.isNodeInPool(poolId, node), "left");
    }

    // ------------------------------------------------------------------ modules accept only their binding

    function test_ModulesRejectDirectCalls() public {
        bytes memory notPrime = abi.encodeWithSelector(IPrimeErrors.CallerNotPrimeNetwork.selector, stranger);
        vm.startPrank(stranger);

        vm.expectRevert(notPrime);
        registry.register(stranger);
        vm.expectRevert(notPrime);
        registry.setWhitelistStatus(stranger, true);
        vm.expectRevert(notPrime);
        registry.addComputeNode(stranger, node, 1, "");
        vm.expectRevert(notPrime);
        registry.removeComputeNode(stranger, node);
        vm.expectRevert(notPrime);
        registry.setNodeValidationStatus(stranger, node, true);
        vm.expectRevert(notPrime);
        registry.setComputePool(stranger);
        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.CallerNotComputePool.selector, stranger));
        registry.setNodeActive(node, true);

        vm.expectRevert(notPrime);
        domains.create("d", "");

        vm.expectRevert(notPrime);
        stakes.stake(stranger, 1);
        vm.expectRevert(notPrime);
        stakes.unstake(stranger, 1);
        vm.expectRevert(notPrime);
        stakes.slash(provider, 1, stranger, "");
        vm.expectRevert(notPrime);
        stakes.setUnbondingPeriod(0);
        vm.expectRevert(notPrime);
        stakes.setStakeMinimum(0);

        vm.stopPrank();
    }

    function test_RegistrySetNodeActive_OnlyThePool() public {
        register(provider, 1 ether);
        whitelist(provider);
        addNode(provider, NODE_PK, 10);

        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.CallerNotComputePool.selector, address(network)));
        vm.prank(address(network));
        registry.setNodeActive(node, true);

        vm.prank(address(pools));
        registry.setNodeActive(node, true);
        assertTrue(registry.getNode(node).isActive, "pool may flip isActive");
    }
}
