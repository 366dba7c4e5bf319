"""EIP-712 typed data that the contracts verify: node-key ownership and pool invites.

The digests here must equal what `PrimeNetwork.hashNodeKey` and `ComputePool.hashPoolInvite` compute on
chain (the integration tests compare them against the deployed contracts). The domain binds the chain id and
the verifying contract, so a signature is worthless on another chain or another deployment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account.messages import SignableMessage, encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_hash.auto import keccak

NODE_KEY_TYPES = {
    "NodeKey": [
        {"name": "provider", "type": "address"},
        {"name": "node", "type": "address"},
        {"name": "nonce", "type": "uint256"},
    ]
}
POOL_INVITE_TYPES = {
    "PoolInvite": [
        {"name": "domainId", "type": "uint256"},
        {"name": "poolId", "type": "uint256"},
        {"name": "node", "type": "address"},
        {"name": "nonce", "type": "uint256"},
        {"name": "expiry", "type": "uint256"},
    ]
}


def _domain(name: str, chain_id: int, contract: str) -> dict[str, Any]:
    return {"name": name, "version": "1", "chainId": chain_id, "verifyingContract": contract}


def node_key_message(*, chain_id: int, prime_network: str, provider: str, node: str, nonce: int) -> SignableMessage:
    return encode_typed_data(
        domain_data=_domain("PrimeNetwork", chain_id, prime_network),
        message_types=NODE_KEY_TYPES,
        message_data={"provider": provider, "node": node, "nonce": nonce},
    )


@dataclass(frozen=True)
class PoolInvite:
    """What a pool's compute manager signs to let one node join one pool, once, until `expiry`."""

    domain_id: int
    pool_id: int
    node: str
    nonce: int
    expiry: int  # unix seconds; the contract accepts the invite while block.timestamp <= expiry

    def message(self, *, chain_id: int, compute_pool: str) -> SignableMessage:
        return encode_typed_data(
            domain_data=_domain("ComputePool", chain_id, compute_pool),
            message_types=POOL_INVITE_TYPES,
            message_data={
                "domainId": self.domain_id,
                "poolId": self.pool_id,
                "node": self.node,
                "nonce": self.nonce,
                "expiry": self.expiry,
            },
        )


def digest(message: SignableMessage) -> bytes:
    """The 32-byte hash that is signed (what `_hashTypedDataV4` returns on chain)."""
    return keccak(b"\x19" + message.version + message.header + message.body)


def sign(account: LocalAccount, message: SignableMessage) -> bytes:
    """65-byte r || s || v signature, as the contracts' ECDSA check expects."""
    return bytes(account.sign_message(message).signature)


def recover(message: SignableMessage, signature: bytes) -> str:
    recovered: str = Account.recover_message(message, signature=signature)
    return recovered
