// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {TestBase} from "./utils/TestBase.sol";

/// @notice The staking token: plain transfers (no transfer gate) and EIP-2612 permit.
contract AITokenTest is TestBase {
    function test_Metadata() public view {
        assertEq(token.name(), "AI Token", "name");
        assertEq(token.symbol(), "AI", "symbol");
        assertEq(token.decimals(), 18, "decimals");
    }

    function test_TransfersAreNotGated() public {
        vm.prank(provider);
        assertTrue(token.transfer(stranger, 1 ether), "transfer returns true");
        assertEq(token.balanceOf(stranger), 1_001 ether, "transfer");

        vm.prank(stranger);
        token.approve(provider, 2 ether);
        vm.prank(provider);
        assertTrue(token.transferFrom(stranger, provider2, 2 ether), "transferFrom returns true");
        assertEq(token.balanceOf(provider2), 1_002 ether, "transferFrom");
    }

    function test_Permit() public {
        uint256 deadline = block.timestamp + 60;
        bytes32 structHash = keccak256(
            abi.encode(
                keccak256("Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)"),
                provider,
                stranger,
                7,
                token.nonces(provider),
                deadline
            )
        );
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(PROVIDER_PK, typedDigest(token.DOMAIN_SEPARATOR(), structHash));
        token.permit(provider, stranger, 7, deadline, v, r, s);
        assertEq(token.allowance(provider, stranger), 7, "allowance from permit");
        assertEq(token.nonces(provider), 1, "permit nonce consumed");

        vm.expectRevert();
        token.permit(provider, stranger, 7, deadline, v, r, s);
    }
}
