// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {IPrimeErrors} from "./interfaces/IPrimeErrors.sol";
import {IStakeManager} from "./interfaces/IStakeManager.sol";

/// @title StakeManager
/// @notice Custody and accounting of the providers' stake. Stake leaves through an unbonding queue: an
/// unstaked amount stays here (and stays slashable) until `releaseTime = unstake time + unbondingPeriod`,
/// after which the staker calls `withdraw`.
/// @dev Bound to one PrimeNetwork and one token at construction. PrimeNetwork moves the tokens in
/// (`token.transferFrom(provider, stakeManager, amount)`) and then records them with `stake`; `stake`
/// checks that the balance covers every recorded token, so a wiring mistake cannot create unbacked stake.
contract StakeManager is IStakeManager, IPrimeErrors {
    using SafeERC20 for IERC20;

    /// Pending unbonds per staker; bounds the loops in `withdraw` and `slash`.
    uint256 public constant MAX_PENDING_UNBONDS = 32;
    uint256 public constant MAX_UNBONDING_PERIOD = 365 days;
    /// 1e36 = 1e18 whole tokens (18 decimals) per compute unit: far above any sane value, and small enough
    /// that `computeUnits * minimum` cannot overflow.
    uint256 public constant MAX_STAKE_MINIMUM = 1e36;

    address public immutable primeNetwork;
    address public immutable token;

    uint256 private _unbondingPeriod;
    uint256 private _stakeMinimum;
    uint256 private _totalStaked;
    uint256 private _totalUnbonding;
    mapping(address staker => uint256) private _stakes;
    mapping(address staker => Unbond[]) private _unbonds;

    modifier onlyPrimeNetwork() {
        if (msg.sender != primeNetwork) revert CallerNotPrimeNetwork(msg.sender);
        _;
    }

    /// @param primeNetwork_ the PrimeNetwork this stake manager belongs to
    /// @param token_ the staking token (AIToken); must be the token PrimeNetwork was built with
    /// @param unbondingPeriod_ seconds between unstaking and withdrawal (0..MAX_UNBONDING_PERIOD)
    constructor(address primeNetwork_, address token_, uint256 unbondingPeriod_) {
        if (primeNetwork_ == address(0) || token_ == address(0)) revert ZeroAddress();
        if (unbondingPeriod_ > MAX_UNBONDING_PERIOD) revert InvalidUnbondingPeriod(unbondingPeriod_);
        primeNetwork = primeNetwork_;
        token = token_;
        _unbondingPeriod = unbondingPeriod_;
        emit UnbondingPeriodUpdated(unbondingPeriod_);
    }

    // ------------------------------------------------------------------ writes (PrimeNetwork)

    /// @notice Records `amount` tokens, already transferred here, as `staker`'s stake.
    function stake(address staker, uint256 amount) external onlyPrimeNetwork {
        if (amount == 0) revert ZeroAmount();
        _stakes[staker] += amount;
        _totalStaked += amount;
        uint256 required = _totalStaked + _totalUnbonding;
        uint256 balance = IERC20(token).balanceOf(address(this));
        if (balance < required) revert StakeNotFunded(balance, required);
        emit Staked(staker, amount, _stakes[staker]);
    }

    /// @notice Moves `amount` from `staker`'s stake into a new unbonding entry.
    function unstake(address staker, uint256 amount) external onlyPrimeNetwork {
        if (amount == 0) revert ZeroAmount();
        uint256 current = _stakes[staker];
        if (amount > current) revert ReclaimExceedsExcess(amount, current);
        Unbond[] storage queue = _unbonds[staker];
        if (queue.length >= MAX_PENDING_UNBONDS) revert TooManyUnbonds(MAX_PENDING_UNBONDS);
        _stakes[staker] = current - amount;
        _totalStaked -= amount;
        _totalUnbonding += amount;
        uint256 releaseTime = block.timestamp + _unbondingPeriod;
        queue.push(Unbond({amount: amount, releaseTime: releaseTime}));
        emit UnbondingStarted(staker, amount, releaseTime);
    }

    /// @notice Takes up to `amount` from `staker`: the active stake first, then pending unbonds, newest
    /// first (unbonding does not escape a slash). Sends what was taken to `recipient`.
    /// @return slashed what was actually taken (less than `amount` when the staker has less)
    function slash(address staker, uint256 amount, address recipient, bytes calldata reason)
        external
        onlyPrimeNetwork
        returns (uint256 slashed)
    {
        if (amount == 0) revert ZeroAmount();
        if (recipient == address(0)) revert ZeroAddress();
        uint256 fromStake = _min(amount, _stakes[staker]);
        _stakes[staker] -= fromStake;
        _totalStaked -= fromStake;
        slashed = fromStake;

        Unbond[] storage queue = _unbonds[staker];
        uint256 fromUnbonds;
        while (slashed < amount && queue.length > 0) {
            Unbond storage last = queue[queue.length - 1];
            uint256 take = _min(amount - slashed, last.amount);
            slashed += take;
            fromUnbonds += take;
            if (take == last.amount) {
                queue.pop();
            } else {
                last.amount -= take;
            }
        }
        _totalUnbonding -= fromUnbonds;

        if (slashed > 0) IERC20(token).safeTransfer(recipient, slashed);
        emit Slashed(staker, slashed, recipient, reason);
    }

    function setUnbondingPeriod(uint256 period) external onlyPrimeNetwork {
        if (period > MAX_UNBONDING_PERIOD) revert InvalidUnbondingPeriod(period);
        _unbondingPeriod = period;
        emit UnbondingPeriodUpdated(period);
    }

    function setStakeMinimum(uint256 minimumPerComputeUnit) external onlyPrimeNetwork {
        if (minimumPerComputeUnit > MAX_STAKE_MINIMUM) revert InvalidStakeMinimum(minimumPerComputeUnit);
        _stakeMinimum = minimumPerComputeUnit;
        emit StakeMinimumUpdated(minimumPerComputeUnit);
    }

    // ------------------------------------------------------------------ writes (stakers)

    /// @notice Pays the caller every unbonding entry whose release time has passed
    /// (`block.timestamp >= releaseTime`). Entries not yet released stay queued, in order.
    /// @return amount the tokens paid
    function withdraw() external returns (uint256 amount) {
        Unbond[] storage queue = _unbonds[msg.sender];
        uint256 kept;
        uint256 length = queue.length;
        for (uint256 i; i < length; ++i) {
            Unbond memory entry = queue[i];
            if (entry.releaseTime <= block.timestamp) {
                amount += entry.amount;
            } else {
                if (kept != i) queue[kept] = entry;
                ++kept;
            }
        }
        if (amount == 0) revert NothingToWithdraw();
        while (queue.length > kept) queue.pop();
        _totalUnbonding -= amount;
        IERC20(token).safeTransfer(msg.sender, amount);
        emit Withdrawn(msg.sender, amount);
    }

    // ------------------------------------------------------------------ views

    function getStake(address staker) external view returns (uint256) {
        return _stakes[staker];
    }

    /// @notice Minimum stake per compute unit (token base units).
    function getStakeMinimum() external view returns (uint256) {
        return _stakeMinimum;
    }

    function getUnbondingPeriod() external view returns (uint256) {
        return _unbondingPeriod;
    }

    /// @notice The staker's pending unbonds, oldest first.
    function getPendingUnbonds(address staker) external view returns (Unbond[] memory) {
        return _unbonds[staker];
    }

    /// @notice Sum of the staker's pending unbonds, released or not.
    function getUnbondingTotal(address staker) external view returns (uint256 total) {
        Unbond[] storage queue = _unbonds[staker];
        for (uint256 i; i < queue.length; ++i) {
            total += queue[i].amount;
        }
    }

    /// @notice What `withdraw` would pay the staker now.
    function getWithdrawable(address staker) external view returns (uint256 total) {
        Unbond[] storage queue = _unbonds[staker];
        for (uint256 i; i < queue.length; ++i) {
            if (queue[i].releaseTime <= block.timestamp) total += queue[i].amount;
        }
    }

    function getTotalStaked() external view returns (uint256) {
        return _totalStaked;
    }

    function getTotalUnbonding() external view returns (uint256) {
        return _totalUnbonding;
    }

    function _min(uint256 a, uint256 b) private pure returns (uint256) {
        return a < b ? a : b;
    }
}
