"""The contracts' AccessControl role ids (keccak256 of the role's name) and their names, for messages.

PrimeNetwork: DEFAULT_ADMIN_ROLE (the deployer), FEDERATOR_ROLE (the operator; admin of VALIDATOR_ROLE and
SLASHER_ROLE), VALIDATOR_ROLE (node validation), SLASHER_ROLE (slashing, to the treasury, within the caps).
AIToken: MINTER_ROLE.
"""

from __future__ import annotations

from eth_utils.crypto import keccak

DEFAULT_ADMIN_ROLE = bytes(32)
FEDERATOR_ROLE = keccak(text="FEDERATOR_ROLE")
VALIDATOR_ROLE = keccak(text="VALIDATOR_ROLE")
SLASHER_ROLE = keccak(text="SLASHER_ROLE")
MINTER_ROLE = keccak(text="MINTER_ROLE")

ROLE_NAMES: dict[bytes, str] = {
    DEFAULT_ADMIN_ROLE: "DEFAULT_ADMIN_ROLE",
    FEDERATOR_ROLE: "FEDERATOR_ROLE",
    VALIDATOR_ROLE: "VALIDATOR_ROLE",
    SLASHER_ROLE: "SLASHER_ROLE",
    MINTER_ROLE: "MINTER_ROLE",
}


def role_name(role: bytes) -> str | None:
    """The name of a known role id, None for any other 32 bytes."""
    return ROLE_NAMES.get(bytes(role))
