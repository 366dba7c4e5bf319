"""Signed heartbeat replies (`core.replies`): a signed reply verifies, and each way of altering it has its refusal."""

from __future__ import annotations

import hashlib
import json

import pytest
from eth_account import Account

from primenet.core.auth import allow_addresses, new_nonce
from primenet.core.models import HeartbeatReply
from primenet.core.replies import (
    REPLY_AUTH_HEADER,
    ExpectedReply,
    ReplyRefusedError,
    ReplySigner,
    ReplyVerifier,
    sign_reply,
)
from primenet.core.signing import SECP256K1_N, MessageSigner, recover_message_signer, sign_message

pytestmark = pytest.mark.unit
ORCHESTRATOR = Account.create()
NODE = Account.create().address.lower()
AUDIENCE = "orchestrator:0:0x" + "ab" * 20
BODY = b'{"assignment":{"task_id":"t1","image":"local/primenet-busybox:1"}}'
verifier = ReplyVerifier(allow_addresses([ORCHESTRATOR.address]))


def expected(nonce: str, **changes: object) -> ExpectedReply:
    fields: dict[str, object] = {"node": NODE, "request_nonce": nonce, "audience": AUDIENCE, "chain_id": 31337}
    return ExpectedReply(**{**fields, **changes})  # type: ignore[arg-type]


def signed(nonce: str, body: bytes = BODY, account: object = ORCHESTRATOR) -> str:
    signer = ReplySigner(account, audience=AUDIENCE, chain_id=31337)  # type: ignore[arg-type]
    return signer.header(body, node=NODE, request_nonce=nonce)[REPLY_AUTH_HEADER]


async def refusal(header: str | None, body: bytes, want: ExpectedReply) -> str:
    with pytest.raises(ReplyRefusedError) as caught:
        await verifier.verify(header, body, want)
    return caught.value.code


async def test_a_signed_reply_verifies_to_its_signer() -> None:
    nonce = new_nonce()
    assert await verifier.verify(signed(nonce), BODY, expected(nonce)) == ORCHESTRATOR.address.lower()
    # The node's address in any case is the same node.
    assert await verifier.verify(signed(nonce), BODY, expected(nonce, node=NODE.upper().replace("0X", "0x")))


async def test_an_unsigned_reply_is_refused() -> None:
    nonce = new_nonce()
    assert await refusal(None, BODY, expected(nonce)) == "reply_unsigned"
    assert await refusal("", BODY, expected(nonce)) == "reply_unsigned"


@pytest.mark.parametrize("header", ["not json", "{}", '{"signer": 1}', "x" * 5000])
async def test_a_malformed_header_is_refused(header: str) -> None:
    assert await refusal(header, BODY, expected(new_nonce())) == "reply_malformed"


async def test_a_changed_body_is_refused() -> None:
    nonce = new_nonce()
    swapped = BODY.replace(b"local/primenet-busybox:1", b"evil/miner:latest")
    assert await refusal(signed(nonce), swapped, expected(nonce)) == "reply_body_mismatch"
    assert await refusal(signed(nonce), BODY + b" ", expected(nonce)) == "reply_body_mismatch"


@pytest.mark.parametrize(
    "changes",
    [
        {"request_nonce": "another-nonce-0123456789"},  # an old reply replayed to a later beat
        {"node": Account.create().address},  # a reply for another node
        {"audience": "orchestrator:1:0x" + "ab" * 20},  # another pool's orchestrator
        {"chain_id": 1},
    ],
)
async def test_a_reply_to_another_request_is_refused(changes: dict[str, object]) -> None:
    nonce = new_nonce()
    assert await refusal(signed(nonce), BODY, expected(nonce, **changes)) == "reply_wrong_request"


async def test_a_reply_signed_by_another_key_is_refused() -> None:
    nonce = new_nonce()
    foreign = signed(nonce, account=Account.create())
    assert await refusal(foreign, BODY, expected(nonce)) == "reply_signer_unauthorized"


async def test_claims_edited_after_signing_are_refused() -> None:
    nonce = new_nonce()
    claims = json.loads(signed(nonce))
    # The claimed signer swapped for the orchestrator's while the signature is another key's.
    other = json.loads(signed(nonce, account=Account.create()))
    other["signer"] = claims["signer"]
    assert await refusal(json.dumps(other), BODY, expected(nonce)) == "reply_signature_invalid"
    # A body hash edited to match a swapped body: the signature no longer covers the claims.
    swapped = b'{"assignment":null}'
    edited = {**claims, "body_sha256": hashlib.sha256(swapped).hexdigest()}
    assert await refusal(json.dumps(edited), swapped, expected(nonce)) == "reply_signature_invalid"


async def test_a_high_s_twin_of_a_valid_signature_is_refused() -> None:
    nonce = new_nonce()
    claims = json.loads(signed(nonce))
    raw = bytes.fromhex(claims["signature"][2:])
    s = int.from_bytes(raw[32:64])
    twin = raw[:32] + (SECP256K1_N - s).to_bytes(32) + bytes((55 - raw[64],))  # v 27 <-> 28
    claims["signature"] = "0x" + twin.hex()
    assert await refusal(json.dumps(claims), BODY, expected(nonce)) == "reply_signature_invalid"


def test_the_signed_statement_names_every_binding() -> None:
    header = json.loads(
        sign_reply(ORCHESTRATOR, body=BODY, node=NODE, request_nonce="n" * 24, audience=AUDIENCE, chain_id=5)
    )
    assert header["body_sha256"] == hashlib.sha256(BODY).hexdigest()
    assert (header["node"], header["request_nonce"], header["audience"], header["chain_id"]) == (
        NODE,
        "n" * 24,
        AUDIENCE,
        5,
    )


def test_the_fast_signer_signs_as_eth_account_does() -> None:
    signer = MessageSigner(ORCHESTRATOR)
    for message in (b"", b"primenet-reply/v1\nx", bytes(range(256))):
        assert signer.sign(message) == sign_message(ORCHESTRATOR, message)
        assert recover_message_signer(message, signer.sign(message)) == ORCHESTRATOR.address.lower()


async def test_the_hold_flag_is_covered_by_the_signature() -> None:
    # A hold reply's `hold` flipped in transit would make the miner remove its task: the body hash refuses it.
    held = HeartbeatReply(hold=True).model_dump_json().encode()
    nonce = new_nonce()
    assert await verifier.verify(signed(nonce, held), held, expected(nonce))
    flipped = HeartbeatReply(hold=False).model_dump_json().encode()
    assert await refusal(signed(nonce, held), flipped, expected(nonce)) == "reply_body_mismatch"
