"""Role ids and how a refused role check reads: by the role's name, not 32 bytes of hex."""

from __future__ import annotations

import pytest
from eth_abi.abi import encode
from eth_utils.abi import function_signature_to_4byte_selector
from eth_utils.crypto import keccak

from primenet.chain.errors import decode_revert
from primenet.chain.roles import DEFAULT_ADMIN_ROLE, ROLE_NAMES, SLASHER_ROLE, role_name

pytestmark = pytest.mark.unit

ACCOUNT = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"


def unauthorized(role: bytes) -> bytes:
    selector = function_signature_to_4byte_selector("AccessControlUnauthorizedAccount(address,bytes32)")
    return selector + encode(["address", "bytes32"], [ACCOUNT, role])


def test_role_ids_are_the_keccak_of_their_names() -> None:
    for role, name in ROLE_NAMES.items():
        assert role == (DEFAULT_ADMIN_ROLE if name == "DEFAULT_ADMIN_ROLE" else keccak(text=name))
    assert role_name(SLASHER_ROLE) == "SLASHER_ROLE"
    assert role_name(keccak(text="NOT_A_ROLE")) is None


def test_a_refused_role_check_names_the_role_and_keeps_the_raw_bytes() -> None:
    refused = decode_revert(unauthorized(SLASHER_ROLE), function="slash")
    expected = f"slash reverted: AccessControlUnauthorizedAccount(account={ACCOUNT}, neededRole=SLASHER_ROLE)"
    assert str(refused) == expected
    assert refused.args_by_name["neededRole"] == SLASHER_ROLE  # callers still match on the bytes
    other = keccak(text="NOT_A_ROLE")
    assert f"neededRole=0x{other.hex()}" in str(decode_revert(unauthorized(other)))
