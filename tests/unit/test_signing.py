"""EIP-191 signing and coincurve recovery agree with eth-account, and malformed input is refused."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from primenet.core.auth import AuthClaims, sign_request
from primenet.core.signing import (
    SECP256K1_N,
    NonCanonicalSignatureError,
    RecoveryError,
    SignatureFormatError,
    eip191_digest,
    parse_signature,
    recover_digest_signer,
    recover_message_signer,
    sign_message,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("message", [b"", b"hello", "ünïcode\nlines".encode(), bytes(range(256))])
def test_recovery_matches_eth_account(message: bytes) -> None:
    account = Account.create()
    signature = sign_message(account, message)
    expected = Account.recover_message(encode_defunct(primitive=message), signature=signature)
    assert expected == account.address
    assert recover_message_signer(message, signature) == account.address.lower()


def test_recovery_accepts_v_as_0_or_1() -> None:
    account = Account.create()
    signature = bytes.fromhex(sign_message(account, b"m")[2:])
    low_v = signature[:64] + bytes((signature[64] - 27,))
    assert recover_message_signer(b"m", "0x" + low_v.hex()) == account.address.lower()


def test_other_message_recovers_another_address() -> None:
    account = Account.create()
    assert recover_message_signer(b"n", sign_message(account, b"m")) != account.address.lower()


@pytest.mark.parametrize(
    ("signature", "reason"),
    [("0x1234", "65 bytes"), ("0x" + "zz" * 65, "not hex"), ("0x" + "11" * 64 + "05", "recovery byte")],
)
def test_malformed_signatures_are_refused(signature: str, reason: str) -> None:
    with pytest.raises(SignatureFormatError, match=reason):
        parse_signature(signature)


def test_unrecoverable_signature_raises() -> None:
    with pytest.raises(RecoveryError):
        recover_digest_signer(eip191_digest(b"m"), bytes(64) + b"\x00")  # r = s = 0 is no point on the curve


def test_signed_claims_cover_every_binding() -> None:
    claims = AuthClaims(
        address="0x" + "ab" * 20,
        method="POST",
        path="/api/nodes?x=1",
        body_sha256="0" * 64,
        audience="discovery",
        chain_id=31337,
        timestamp=1_700_000_000,
        nonce="n" * 24,
    )
    text = claims.message().decode()
    for value in ("POST", "/api/nodes?x=1", "0" * 64, "discovery", "31337", "1700000000", "n" * 24):
        assert value in text
    for field, other in [("method", "PUT"), ("path", "/api/nodes?x=2"), ("audience", "orchestrator"), ("chain_id", 1)]:
        assert claims.model_copy(update={field: other}).message() != claims.message()


def test_header_refuses_newlines_that_could_forge_message_lines() -> None:
    with pytest.raises(ValueError, match="audience"):
        sign_request(Account.create(), method="GET", path="/", body=b"", audience="a\nchain-id: 1", chain_id=31337)


def high_s_twin(signature: str) -> str:
    raw = bytes.fromhex(signature[2:])
    s = int.from_bytes(raw[32:64])
    return "0x" + (raw[:32] + (SECP256K1_N - s).to_bytes(32) + bytes((55 - raw[64],))).hex()


def test_a_high_s_twin_recovers_the_same_key_but_is_refused() -> None:
    account = Account.create()
    signature = sign_message(account, b"m")
    twin = high_s_twin(signature)
    raw = bytes.fromhex(twin[2:])
    # The twin is a real signature by the same key (so accepting it would be accepting a second encoding) ...
    assert recover_digest_signer(eip191_digest(b"m"), raw[:64] + bytes((raw[64] - 27,))) == account.address.lower()
    # ... and parse_signature refuses it, while the low-s original passes.
    with pytest.raises(NonCanonicalSignatureError, match="upper half"):
        parse_signature(twin)
    assert recover_message_signer(b"m", signature) == account.address.lower()


@pytest.mark.parametrize("r_s", [(0, 1), (1, 0), (SECP256K1_N, 1), (1, SECP256K1_N)])
def test_r_and_s_out_of_range_are_refused(r_s: tuple[int, int]) -> None:
    r, s = r_s
    with pytest.raises(NonCanonicalSignatureError, match=r"\[1, n-1\]"):
        parse_signature("0x" + (r.to_bytes(32) + s.to_bytes(32) + b"\x1b").hex())
