// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IPrimeErrors} from "../src/interfaces/IPrimeErrors.sol";
import {IStakeManager} from "../src/interfaces/IStakeManager.sol";
import {TestBase} from "./utils/TestBase.sol";

/// @notice Stake arithmetic, the minimum-stake formula, unbonding and slashing (with fuzz tests).
contract StakeManagerTest is TestBase {
    uint256 internal constant FUNDS = 1_000 ether;

    /// Tokens held by StakeManager always equal recorded stake plus pending unbonds.
    function _assertSolvent() internal view {
        assertEq(
            token.balanceOf(address(stakes)),
            stakes.getTotalStaked() + stakes.getTotalUnbonding(),
            "stake manager solvent"
        );
    }

    function _reclaim(address who, uint256 amount) internal {
        vm.prank(who);
        network.reclaimStake(amount);
    }

    // ------------------------------------------------------------------ fuzz

    function testFuzz_StakeAccounting(uint256 initial, uint256 extra, uint256 reclaim) public {
        initial = bound(initial, MIN_PER_UNIT, FUNDS / 2);
        extra = bound(extra, 1, FUNDS / 2);
        reclaim = bound(reclaim, 1, initial + extra);

        register(provider, initial);
        vm.prank(provider);
        network.increaseStake(extra);
        _reclaim(provider, reclaim); // no nodes: the whole stake is reclaimable

        assertEq(stakes.getStake(provider), initial + extra - reclaim, "stake");
        assertEq(stakes.getUnbondingTotal(provider), reclaim, "unbonding");
        assertEq(stakes.getTotalStaked(), initial + extra - reclaim, "total staked");
        assertEq(stakes.getTotalUnbonding(), reclaim, "total unbonding");
        assertEq(token.balanceOf(provider), FUNDS - initial - extra, "provider balance");
        _assertSolvent();
    }

    function testFuzz_MinimumStakeFormula(uint256 perUnit, uint256 units1, uint256 units2, uint256 surplus) public {
        units1 = bound(units1, 1, 1e6);
        units2 = bound(units2, 1, 1e6);
        perUnit = bound(perUnit, 0, (FUNDS - 1 ether) / (units1 + units2)); // affordable with FUNDS
        surplus = bound(surplus, 0, 1 ether);
        vm.prank(federator);
        network.setStakeMinimum(perUnit);

        uint256 needed = (units1 + units2) * perUnit;
        uint256 stake = needed + surplus;
        vm.assume(stake > 0); // perUnit == 0 and no surplus: nothing to register with
        register(provider, stake);
        whitelist(provider);
        assertEq(network.calculateMinimumStake(provider, units1 + units2), needed, "before nodes");
        addNode(provider, NODE_PK, units1);
        addNode(provider, NODE2_PK, units2);

        assertEq(network.calculateMinimumStake(provider, 0), needed, "minimum");
        assertEq(network.calculateMinimumStake(provider, 5), needed + 5 * perUnit, "minimum with more units");
        assertEq(network.getReclaimableStake(provider), surplus, "reclaimable");
        if (surplus > 0) _reclaim(provider, surplus);
        assertEq(stakes.getStake(provider), needed, "left exactly the minimum");
        _assertSolvent();
    }

    function testFuzz_UnbondingReleasesOnlyAfterPeriod(uint256 amount, uint256 period, uint256 early, uint256 late)
        public
    {
        amount = bound(amount, MIN_PER_UNIT, FUNDS);
        period = bound(period, 0, 365 days);
        vm.prank(federator);
        network.setUnbondingPeriod(period);
        register(provider, amount);
        uint256 start = block.timestamp;
        _reclaim(provider, amount);

        IStakeManager.Unbond[] memory pending = stakes.getPendingUnbonds(provider);
        assertEq(pending.length, 1, "one unbond");
        assertEq(pending[0].releaseTime, start + period, "release time");

        if (period > 0) {
            vm.warp(start + bound(early, 0, period - 1));
            assertEq(stakes.getWithdrawable(provider), 0, "nothing withdrawable early");
            vm.expectRevert(IPrimeErrors.NothingToWithdraw.selector);
            vm.prank(provider);
            stakes.withdraw();
        }

        vm.warp(start + period + bound(late, 0, 3650 days));
        assertEq(stakes.getWithdrawable(provider), amount, "withdrawable");
        vm.expectEmit(true, true, true, true, address(stakes));
        emit IStakeManager.Withdrawn(provider, amount);
        vm.prank(provider);
        assertEq(stakes.withdraw(), amount, "paid");
        assertEq(token.balanceOf(provider), FUNDS, "all tokens back");
        assertEq(stakes.getPendingUnbonds(provider).length, 0, "queue empty");
        _assertSolvent();
    }

    function testFuzz_WithdrawPaysOnlyMaturedUnbonds(uint256 gap, uint256 checkAt) public {
        gap = bound(gap, 1, 30 days);
        register(provider, 3 ether);
        uint256 t0 = block.timestamp;
        _reclaim(provider, 1 ether); // releases at t0 + 7d
        vm.warp(t0 + gap);
        _reclaim(provider, 2 ether); // releases at t0 + gap + 7d

        checkAt = bound(checkAt, t0 + UNBONDING, t0 + gap + UNBONDING - 1);
        vm.warp(checkAt);
        vm.prank(provider);
        assertEq(stakes.withdraw(), 1 ether, "only the first");
        IStakeManager.Unbond[] memory pending = stakes.getPendingUnbonds(provider);
        assertEq(pending.length, 1, "second still pending");
        assertEq(pending[0].amount, 2 ether, "second amount");

        vm.warp(t0 + gap + UNBONDING);
        vm.prank(provider);
        assertEq(stakes.withdraw(), 2 ether, "then the second");
        _assertSolvent();
    }

    function testFuzz_SlashTakesStakeThenNewestUnbonds(uint256 staked, uint256 u1, uint256 u2, uint256 amount) public {
        staked = bound(staked, 3, FUNDS);
        u1 = bound(u1, 1, staked - 2);
        u2 = bound(u2, 1, staked - u1 - 1);
        uint256 total = staked; // stake + unbonds
        amount = bound(amount, 1, total + 1 ether);
        vm.prank(federator);
        network.setStakeMinimum(0);

        register(provider, staked);
        _reclaim(provider, u1);
        vm.warp(block.timestamp + 1);
        _reclaim(provider, u2);
        uint256 active = staked - u1 - u2;

        vm.prank(slasher);
        uint256 slashed = network.slash(provider, amount, "fuzz");

        uint256 expected = amount < total ? amount : total;
        assertEq(slashed, expected, "slashed");
        assertEq(token.balanceOf(treasury), expected, "the treasury got the slash");
        uint256 fromStake = expected < active ? expected : active;
        assertEq(stakes.getStake(provider), active - fromStake, "stake first");
        uint256 rest = expected - fromStake;
        uint256 fromU2 = rest < u2 ? rest : u2;
        uint256 fromU1 = rest - fromU2;
        assertEq(stakes.getUnbondingTotal(provider), u1 + u2 - fromU2 - fromU1, "unbonds after");
        IStakeManager.Unbond[] memory pending = stakes.getPendingUnbonds(provider);
        if (fromU2 < u2) {
            assertEq(pending.length, 2, "both left");
            assertEq(pending[0].amount, u1, "older untouched while the newer has tokens");
            assertEq(pending[1].amount, u2 - fromU2, "newer reduced");
        } else if (fromU1 < u1) {
            assertEq(pending.length, 1, "newer gone");
            assertEq(pending[0].amount, u1 - fromU1, "older reduced");
        } else {
            assertEq(pending.length, 0, "all gone");
        }
        _assertSolvent();
    }

    // ------------------------------------------------------------------ unit

    function test_Slash_Event() public {
        register(provider, 1 ether);
        vm.expectEmit(true, true, true, true, address(stakes));
        emit IStakeManager.Slashed(provider, 0.5 ether, treasury, "reason");
        vm.prank(slasher);
        network.slash(provider, 0.5 ether, "reason");
        vm.expectRevert(IPrimeErrors.ZeroAmount.selector);
        vm.prank(slasher);
        network.slash(provider, 0, "");
    }

    function test_Withdraw_RevertsWithNothing() public {
        vm.expectRevert(IPrimeErrors.NothingToWithdraw.selector);
        vm.prank(provider);
        stakes.withdraw();
    }

    function test_TooManyUnbonds() public {
        register(provider, 1 ether);
        uint256 max = stakes.MAX_PENDING_UNBONDS();
        for (uint256 i; i < max; ++i) {
            _reclaim(provider, 1);
        }
        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.TooManyUnbonds.selector, max));
        vm.prank(provider);
        network.reclaimStake(1);

        vm.warp(block.timestamp + UNBONDING);
        vm.prank(provider);
        assertEq(stakes.withdraw(), max, "withdrawn");
        _reclaim(provider, 1); // room again
    }

    function test_UnbondingPeriodChangeAppliesToNewUnbonds() public {
        register(provider, 2 ether);
        _reclaim(provider, 1 ether); // 7 days
        vm.prank(federator);
        network.setUnbondingPeriod(1 days);
        _reclaim(provider, 1 ether); // 1 day: matures before the first

        vm.warp(block.timestamp + 1 days);
        vm.prank(provider);
        assertEq(stakes.withdraw(), 1 ether, "the short one");
        IStakeManager.Unbond[] memory pending = stakes.getPendingUnbonds(provider);
        assertEq(pending.length, 1, "the long one waits");
        assertEq(pending[0].releaseTime, START_TIME + UNBONDING, "its release time");
    }

    function test_Limits() public {
        uint256 maxPeriod = stakes.MAX_UNBONDING_PERIOD();
        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.InvalidUnbondingPeriod.selector, maxPeriod + 1));
        vm.prank(federator);
        network.setUnbondingPeriod(maxPeriod + 1);

        uint256 maxMinimum = stakes.MAX_STAKE_MINIMUM();
        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.InvalidStakeMinimum.selector, maxMinimum + 1));
        vm.prank(federator);
        network.setStakeMinimum(maxMinimum + 1);

        vm.expectEmit(true, true, true, true, address(stakes));
        emit IStakeManager.StakeMinimumUpdated(maxMinimum);
        vm.prank(federator);
        network.setStakeMinimum(maxMinimum);
        vm.expectEmit(true, true, true, true, address(stakes));
        emit IStakeManager.UnbondingPeriodUpdated(maxPeriod);
        vm.prank(federator);
        network.setUnbondingPeriod(maxPeriod);
    }

    function test_Stake_RefusesUnfundedRecords() public {
        // Even PrimeNetwork cannot record stake that was not transferred in first.
        vm.expectRevert(abi.encodeWithSelector(IPrimeErrors.StakeNotFunded.selector, 0, 5));
        vm.prank(address(network));
        stakes.stake(provider, 5);
    }
}
