// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title IStakeManager
/// @notice Holds the providers' staked AI tokens. Mutations come from PrimeNetwork only, except `withdraw`,
/// which a staker calls directly once an unbonding entry has matured.
interface IStakeManager {
    /// @notice Tokens on their way out: withdrawable once `block.timestamp >= releaseTime`.
    struct Unbond {
        uint256 amount;
        uint256 releaseTime;
    }

    /// `amount` was added to `staker`'s stake, which is now `newStake`.
    event Staked(address indexed staker, uint256 amount, uint256 newStake);
    /// `amount` left the stake of `staker` and can be withdrawn from `releaseTime` on.
    event UnbondingStarted(address indexed staker, uint256 amount, uint256 releaseTime);
    /// Matured unbonds worth `amount` were paid to `staker`.
    event Withdrawn(address indexed staker, uint256 amount);
    /// `amount` was taken from `staker` (stake first, then pending unbonds) and sent to `recipient`.
    event Slashed(address indexed staker, uint256 amount, address indexed recipient, bytes reason);
    event UnbondingPeriodUpdated(uint256 period);
    event StakeMinimumUpdated(uint256 minimumPerComputeUnit);

    function primeNetwork() external view returns (address);
    function token() external view returns (address);

    function stake(address staker, uint256 amount) external;
    function unstake(address staker, uint256 amount) external;
    function slash(address staker, uint256 amount, address recipient, bytes calldata reason)
        external
        returns (uint256 slashed);
    function setUnbondingPeriod(uint256 period) external;
    function setStakeMinimum(uint256 minimumPerComputeUnit) external;
    function withdraw() external returns (uint256 amount);

    function getStake(address staker) external view returns (uint256);
    function getStakeMinimum() external view returns (uint256);
    function getUnbondingPeriod() external view returns (uint256);
    function getPendingUnbonds(address staker) external view returns (Unbond[] memory);
    function getUnbondingTotal(address staker) external view returns (uint256);
    function getWithdrawable(address staker) external view returns (uint256);
    function getTotalStaked() external view returns (uint256);
    function getTotalUnbonding() external view returns (uint256);
}
