// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {AIToken} from "../src/AIToken.sol";
import {ComputePool} from "../src/ComputePool.sol";
import {ComputeRegistry} from "../src/ComputeRegistry.sol";
import {DomainRegistry} from "../src/DomainRegistry.sol";
import {PrimeNetwork} from "../src/PrimeNetwork.sol";
import {StakeManager} from "../src/StakeManager.sol";
import {IPrimeErrors} from "../src/interfaces/IPrimeErrors.sol";
import {IPrimeNetwork} from "../src/interfaces/IPrimeNetwork.sol";
import {IStakeManager} from "../src/interfaces/IStakeManager.sol";
import {TestBase} from "./utils/TestBase.sol";

/// @notice Slashing that one hot key cannot abuse: its own role, the treasury as the only recipient, caps per
/// call, per provider per period and per network per period, and a reason in the event. Each refusal is
/// performed by the party it is meant to stop.
contract SlashingTest is TestBase {
    uint256 internal constant CALL_CAP = 1 ether;
    uint256 internal constant PROVIDER_CAP = 2 ether;
    uint256 internal constant NETWORK_CAP = 3 ether;
    uint256 internal constant PERIOD = 1 days;

    bytes32 internal SLASHER_ROLE;
    bytes32 internal FEDERATOR_ROLE;

    function setUp() public override {
        super.setUp();
        SLASHER_ROLE = network.SLASHER_ROLE();
        FEDERATOR_ROLE = network.FEDERATOR_ROLE();
        vm.prank(federator);
        network.setSlashLimits(CALL_CAP, PROVIDER_CAP, NETWORK_CAP, PERIOD);
        register(provider, 10 ether);
        register(provider2, 10 ether);
    }

    function _slash(address who, uint256 amount) internal returns (uint256) {
        vm.prank(slasher);
        return network.slash(who, amount, "bad work");
    }

    // ------------------------------------------------------------------ the role

    function test_NonSlashersAreRefused_TheValidatorIncluded() public {
        address[4] memory callers = [validator, federator, stranger, provider];
        for (uint256 i; i < callers.length; ++i) {
            vm.expectRevert(unauthorized(callers[i], SLASHER_ROLE));
            vm.prank(callers[i]);
            network.slash(provider2, 1 ether, "take it");
        }
        assertEq(stakes.getStake(provider2), 10 ether, "stake untouched");
        assertEq(token.balanceOf(validator), 0, "the validator got nothing");
    }

    function test_NobodyIsSlasherAtDeployment() public {
        (, PrimeNetwork fresh,,,,) = deploy();
        assertEq(fresh.getRoleMemberCount(SLASHER_ROLE), 0, "no slasher");
        assertEq(fresh.getRoleAdmin(SLASHER_ROLE), FEDERATOR_ROLE, "the federator administers it");
        assertFalse(fresh.hasRole(SLASHER_ROLE, validator), "the validator is not a slasher");
    }

    function test_OnlyTheFederatorGrantsAndRevokesTheSlasherRole() public {
        address[3] memory callers = [validator, slasher, address(this)]; // address(this) is DEFAULT_ADMIN
        for (uint256 i; i < callers.length; ++i) {
            vm.expectRevert(unauthorized(callers[i], FEDERATOR_ROLE));
            vm.prank(callers[i]);
            network.grantRole(SLASHER_ROLE, validator);
        }
        vm.prank(federator);
        network.revokeRole(SLASHER_ROLE, slasher);
        vm.expectRevert(unauthorized(slasher, SLASHER_ROLE));
        _slash(provider, 1);
    }

    // ------------------------------------------------------------------ the recipient

    function test_SlashPaysTheTreasuryNotTheCaller() public {
        assertEq(_slash(provider, 0.75 ether), 0.75 ether, "slashed");
        assertEq(token.balanceOf(treasury), 0.75 ether, "the treasury got it");
        assertEq(token.balanceOf(slasher), 0, "the slasher got nothing");
        assertEq(stakes.getStake(provider), 9.25 ether, "stake reduced");
    }

    function test_TreasuryUnset_RefusesEverySlash() public {
        (, PrimeNetwork fresh,,,,) = _freshDeployment();
        vm.startPrank(federator);
        fresh.grantRole(SLASHER_ROLE, slasher);
        fresh.setSlashLimits(CALL_CAP, PROVIDER_CAP, NETWORK_CAP, PERIOD);
        vm.stopPrank();
        _registerOn(fresh, provider, 1 ether);

        assertEq(fresh.treasury(), address(0), "no treasury at deployment");
        assertEq(fresh.getSlashAllowance(provider), 0, "nothing may be slashed");
        vm.expectRevert(IPrimeErrors.TreasuryNotSet.selector);
        vm.prank(slasher);
        fresh.slash(provider, 1, "bad work");
    }

    function test_LimitsUnset_RefuseEverySlash() public {
        (, PrimeNetwork fresh,,,,) = _freshDeployment();
        vm.startPrank(federator);
        fresh.grantRole(SLASHER_ROLE, slasher);
        fresh.setTreasury(treasury);
        vm.stopPrank();
        _registerOn(fresh, provider, 1 ether);

        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.SlashExceedsCallCap.selector, 1, 0));
        vm.prank(slasher);
        fresh.slash(provider, 1, "bad work");
    }

    function test_OnlyTheFederatorSetsTheTreasury() public {
        address[4] memory callers = [validator, slasher, stranger, address(this)];
        for (uint256 i; i < callers.length; ++i) {
            vm.expectRevert(unauthorized(callers[i], FEDERATOR_ROLE));
            vm.prank(callers[i]);
            network.setTreasury(callers[i]);
        }
        assertEq(network.treasury(), treasury, "unchanged");

        vm.expectEmit(true, true, true, true, address(network));
        emit IPrimeNetwork.TreasuryUpdated(treasury, stranger);
        vm.prank(federator);
        network.setTreasury(stranger);
        _slash(provider, 1 ether);
        assertEq(token.balanceOf(stranger), 1_000 ether + 1 ether, "the new treasury receives");
        assertEq(token.balanceOf(treasury), 0, "the old one no longer does");
    }

    function test_SetTreasury_RefusesZeroAndTheContractsThemselves() public {
        vm.startPrank(federator);
        vm.expectRevert(IPrimeErrors.ZeroAddress.selector);
        network.setTreasury(address(0));
        address[5] memory stuck =
            [address(network), address(stakes), address(registry), address(domains), address(pools)];
        for (uint256 i; i < stuck.length; ++i) {
            vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.InvalidTreasury.selector, stuck[i]));
            network.setTreasury(stuck[i]);
        }
        vm.stopPrank();
    }

    // ------------------------------------------------------------------ the caps

    function test_OverThePerCallCap_IsRefused() public {
        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.SlashExceedsCallCap.selector, CALL_CAP + 1, CALL_CAP));
        _slash(provider, CALL_CAP + 1);
        assertEq(_slash(provider, CALL_CAP), CALL_CAP, "the cap itself is allowed");
    }

    function test_OverTheProviderPeriodCap_IsRefusedUntilThePeriodEnds() public {
        _slash(provider, 1 ether);
        vm.warp(block.timestamp + PERIOD - 1);
        _slash(provider, 0.5 ether);
        assertEq(network.getSlashAllowance(provider), 0.5 ether, "allowance: what is left of the period cap");
        vm.expectRevert(
            abi.encodeWithSelector(IPrimeErrors.SlashExceedsProviderPeriodCap.selector, provider, 0.6 ether, 0.5 ether)
        );
        _slash(provider, 0.6 ether);
        _slash(provider, 0.5 ether);
        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.SlashExceedsProviderPeriodCap.selector, provider, 1, 0));
        _slash(provider, 1);

        _slash(provider2, 1 ether); // another provider has its own window

        vm.warp(block.timestamp + 1); // the windows opened by the first slash have ended
        assertEq(network.getSlashAllowance(provider), CALL_CAP, "a new period");
        assertEq(stakes.getStake(provider), 8 ether, "two (the cap) taken in the period");
    }

    function test_NewProviderWindowOpensAfterThePeriod() public {
        vm.prank(federator);
        network.setSlashLimits(CALL_CAP, PROVIDER_CAP, 100 ether, PERIOD);
        _slash(provider, 1 ether);
        _slash(provider, 1 ether);
        uint256 opened = network.getSlashWindow(provider).start;
        vm.warp(opened + PERIOD);
        assertEq(network.getSlashAllowance(provider), CALL_CAP, "a new window");
        _slash(provider, 1 ether);
        IPrimeNetwork.SlashWindow memory window = network.getSlashWindow(provider);
        assertEq(window.start, opened + PERIOD, "reopened now");
        assertEq(window.used, 1 ether, "counting from zero");
    }

    function test_OverTheNetworkPeriodCap_IsRefused() public {
        _slash(provider, 1 ether);
        _slash(provider, 1 ether);
        _slash(provider2, 0.5 ether);
        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.SlashExceedsNetworkPeriodCap.selector, 1 ether, 0.5 ether));
        _slash(provider2, 1 ether);
        assertEq(network.getSlashAllowance(provider2), 0.5 ether, "the network cap bounds the allowance");
        vm.warp(block.timestamp + PERIOD);
        _slash(provider2, 1 ether);
    }

    function test_OnlyWhatWasTakenCounts() public {
        address poor = vm.addr(0x9009);
        fund(poor, 1 ether);
        vm.prank(federator);
        network.setStakeMinimum(0.25 ether);
        register(poor, 0.25 ether);
        assertEq(_slash(poor, 1 ether), 0.25 ether, "all there was");
        assertEq(network.getSlashWindow(poor).used, 0.25 ether, "counted as taken");
    }

    function test_SetSlashLimits_OnlyTheFederator_PeriodBounded() public {
        address[3] memory callers = [validator, slasher, address(this)];
        for (uint256 i; i < callers.length; ++i) {
            vm.expectRevert(unauthorized(callers[i], FEDERATOR_ROLE));
            vm.prank(callers[i]);
            network.setSlashLimits(type(uint256).max, type(uint256).max, type(uint256).max, 1);
        }
        vm.startPrank(federator);
        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.InvalidSlashPeriod.selector, 0));
        network.setSlashLimits(1, 1, 1, 0);
        uint256 tooLong = network.MAX_SLASH_PERIOD() + 1;
        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.InvalidSlashPeriod.selector, tooLong));
        network.setSlashLimits(1, 1, 1, tooLong);
        vm.expectEmit(true, true, true, true, address(network));
        emit IPrimeNetwork.SlashLimitsUpdated(4, 5, 6, 7);
        network.setSlashLimits(4, 5, 6, 7);
        vm.stopPrank();
        IPrimeNetwork.SlashLimits memory limits = network.getSlashLimits();
        assertEq(limits.perCall, 4, "perCall");
        assertEq(limits.perProviderPerPeriod, 5, "perProvider");
        assertEq(limits.perNetworkPerPeriod, 6, "perNetwork");
        assertEq(limits.period, 7, "period");
    }

    function test_LoweredLimitsCountWhatTheOpenWindowUsed() public {
        _slash(provider, 1 ether);
        vm.prank(federator);
        network.setSlashLimits(CALL_CAP, 1 ether, NETWORK_CAP, PERIOD);
        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.SlashExceedsProviderPeriodCap.selector, provider, 1, 0));
        _slash(provider, 1);
    }

    // ------------------------------------------------------------------ the event and its reason

    function test_EventsCarryTheReasonAndTheSlasher() public {
        bytes memory reason = "failed challenge 0xabc: wrong matrix product";
        vm.expectEmit(true, true, true, true, address(stakes));
        emit IStakeManager.Slashed(provider, 0.5 ether, treasury, reason);
        vm.expectEmit(true, true, true, true, address(network));
        emit IPrimeNetwork.ProviderSlashed(provider, slasher, treasury, 0.5 ether, reason);
        vm.prank(slasher);
        network.slash(provider, 0.5 ether, reason);
    }

    function test_ReasonIsRequiredAndBounded() public {
        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.InvalidSlashReason.selector, 0));
        vm.prank(slasher);
        network.slash(provider, 1, "");
        uint256 max = network.MAX_SLASH_REASON_BYTES();
        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.InvalidSlashReason.selector, max + 1));
        vm.prank(slasher);
        network.slash(provider, 1, new bytes(max + 1));
        vm.prank(slasher);
        network.slash(provider, 1, new bytes(max));
    }

    function test_UnregisteredProvider_IsRefused() public {
        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.ProviderNotRegistered.selector, stranger));
        _slash(stranger, 1);
    }

    // ------------------------------------------------------------------ property

    /// Whatever a slasher tries, in whatever order and timing: a slash succeeds exactly when it asks for no
    /// more than `getSlashAllowance`, and no provider window ever holds more than the provider cap.
    function testFuzz_CapsHoldForAnySequence(uint256 seed) public {
        vm.prank(provider);
        network.increaseStake(20 ether); // more than the sequence can take, so each slash takes what it asks
        vm.prank(provider2);
        network.increaseStake(20 ether);
        uint256 taken;
        for (uint256 i; i < 12; ++i) {
            seed = uint256(keccak256(abi.encode(seed, i)));
            address who = seed % 2 == 0 ? provider : provider2;
            uint256 amount = bound(seed >> 8, 1, 1.5 ether);
            vm.warp(block.timestamp + bound(seed >> 128, 0, PERIOD / 2));
            uint256 allowed = network.getSlashAllowance(who);
            vm.prank(slasher);
            try network.slash(who, amount, "fuzz") returns (uint256 slashed) {
                assertTrue(amount <= allowed, "succeeded only within the allowance");
                assertEq(slashed, amount, "stake covers it");
                taken += slashed;
            } catch {
                assertTrue(amount > allowed, "refused only above the allowance");
            }
            assertTrue(network.getSlashWindow(who).used <= PROVIDER_CAP, "provider window within its cap");
        }
        assertEq(token.balanceOf(treasury), taken, "all of it reached the treasury");
    }

    // ------------------------------------------------------------------ helpers

    /// A second deployment with the stake minimum set and nothing else configured.
    function _freshDeployment()
        internal
        returns (AIToken, PrimeNetwork, ComputeRegistry, DomainRegistry, StakeManager, ComputePool)
    {
        (AIToken t, PrimeNetwork n, ComputeRegistry r, DomainRegistry d, StakeManager s, ComputePool p) = deploy();
        vm.prank(federator);
        n.setStakeMinimum(MIN_PER_UNIT);
        return (t, n, r, d, s, p);
    }

    function _registerOn(PrimeNetwork on, address who, uint256 stake) internal {
        AIToken t = AIToken(on.aiToken());
        t.mint(who, stake);
        vm.startPrank(who);
        t.approve(address(on), stake);
        on.registerProvider(stake);
        vm.stopPrank();
    }
}
