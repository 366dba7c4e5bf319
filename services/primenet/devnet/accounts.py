"""Anvil's well-known dev accounts and the role each plays on the devnet.

These keys are public (Anvil's default mnemonic): they fund and run a local network and nothing else.
"""

from __future__ import annotations

from eth_account import Account
from eth_account.signers.local import LocalAccount

DEV_MNEMONIC = "test test test test test test test test test test test junk"

ROLES = {
    "federator": 0,  # deploys the contracts, holds FEDERATOR_ROLE and MINTER_ROLE, creates domain 0 and pool 0
    "validator": 1,  # holds VALIDATOR_ROLE: challenges and validates nodes
    "orchestrator": 2,  # compute manager of pool 0: signs invites, ejects dead nodes
    "provider": 3,  # a GPU provider: stakes, registers nodes, joins pools
    "node": 4,  # the demo miner's node key
    "slasher": 5,  # holds SLASHER_ROLE (granted by the federator): slashes within the devnet's caps
    "treasury": 6,  # receives slashed stake (set by the federator); holds no role
}


def dev_account(index: int) -> LocalAccount:
    Account.enable_unaudited_hdwallet_features()
    account: LocalAccount = Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
    return account


def role_account(role: str) -> LocalAccount:
    return dev_account(ROLES[role])
