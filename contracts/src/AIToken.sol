// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

/// @title AIToken
/// @notice The network's staking token: a plain ERC20 with EIP-2612 permit (so a provider can
/// register in one transaction) and a role-gated mint. Transfers are not gated.
contract AIToken is ERC20, ERC20Permit, AccessControl {
    bytes32 public constant MINTER_ROLE = keccak256("MINTER_ROLE");

    /// @param name_ token name; also the EIP-712 domain name used by `permit`
    /// @param symbol_ token symbol
    /// @dev The deployer receives DEFAULT_ADMIN_ROLE and MINTER_ROLE.
    constructor(string memory name_, string memory symbol_) ERC20(name_, symbol_) ERC20Permit(name_) {
        _grantRole(DEFAULT_ADMIN_ROLE, msg.sender);
        _grantRole(MINTER_ROLE, msg.sender);
    }

    /// @notice Mints `amount` tokens to `to`.
    /// @dev Reverts with AccessControlUnauthorizedAccount unless the caller holds MINTER_ROLE.
    function mint(address to, uint256 amount) external onlyRole(MINTER_ROLE) {
        _mint(to, amount);
    }
}
