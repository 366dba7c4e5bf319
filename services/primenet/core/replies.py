"""Signed replies: the orchestrator's heartbeat reply (the work order a miner obeys) proven to come from the pool.

A heartbeat reply names the image and command a provider's host will run, so whoever can alter it in transit could
make a miner run any container or drop its task. The orchestrator therefore signs each reply with its key (the
pool's compute manager) and the miner checks it before acting. The statement travels in the
`X-Primenet-Reply-Auth` header as compact JSON with its EIP-191 signature (low-s only, as `core.signing` requires)
and binds:

- `body_sha256`: SHA-256 of the exact body bytes, so nothing in the assignment can be changed;
- `node` and `request_nonce`: the node that beat and the single-use nonce of that beat's signed request, so a reply
  answers one request only: an old reply replayed to a later beat, or one meant for another node, is refused;
- `audience` and `chain_id`: the pool's orchestrator audience (`core.auth.orchestrator_audience`) on one chain, so
  a reply of another pool's or another deployment's orchestrator is refused too.

`ReplyVerifier.verify` runs its checks cheapest first and names each refusal (`ReplyRefusedError.code`):
`reply_unsigned` (no header), `reply_malformed` (the header does not parse), `reply_wrong_request` (node, nonce,
audience or chain are not those of the request sent), `reply_body_mismatch`, `reply_signature_invalid` (the
signature is malformed, not canonical or not by the claimed signer), `reply_signer_unauthorized` (a valid
signature by a key that is not the pool's orchestrator key; `authorize` decides, e.g. from the chain).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from primenet.core.auth import Authorizer
from primenet.core.errors import PrimenetError
from primenet.core.signing import (
    MessageSigner,
    RecoveryError,
    SignatureFormatError,
    eip191_digest,
    parse_signature,
    recover_digest_signer,
)

REPLY_AUTH_HEADER = "X-Primenet-Reply-Auth"
REPLY_SCHEME = "primenet-reply/v1"
MAX_HEADER_CHARS = 2048  # a real header is about 500 characters; a longer one is refused before parsing


class ReplyClaims(BaseModel):
    """What the orchestrator states about one reply; every field is covered by the signature."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    signer: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$")
    body_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    node: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$")
    request_nonce: str = Field(pattern=r"^[A-Za-z0-9_-]{16,64}$")
    audience: str = Field(pattern=r"^[\x21-\x7e]{1,128}$")
    chain_id: int = Field(ge=0, le=2**64 - 1)

    def message(self) -> bytes:
        """The exact text that is personal_signed (line-based, like `core.auth.AuthClaims.message`)."""
        return (
            f"{REPLY_SCHEME}\n"
            f"signer: {self.signer.lower()}\n"
            f"body-sha256: {self.body_sha256}\n"
            f"node: {self.node.lower()}\n"
            f"request-nonce: {self.request_nonce}\n"
            f"audience: {self.audience}\n"
            f"chain-id: {self.chain_id}"
        ).encode()


class SignedReply(ReplyClaims):
    signature: str = Field(max_length=140)


def sign_reply(
    account: LocalAccount | MessageSigner,
    *,
    body: bytes,
    node: str,
    request_nonce: str,
    audience: str,
    chain_id: int,
) -> str:
    """The `X-Primenet-Reply-Auth` header value for the reply `body` to `node`'s request with `request_nonce`."""
    signer = account if isinstance(account, MessageSigner) else MessageSigner(account)
    claims = ReplyClaims(
        signer=signer.address,
        body_sha256=hashlib.sha256(body).hexdigest(),
        node=node.lower(),
        request_nonce=request_nonce,
        audience=audience,
        chain_id=chain_id,
    )
    return SignedReply(**claims.model_dump(), signature=signer.sign(claims.message())).model_dump_json()


class ReplySigner:
    """The orchestrator's side: signs every reply for one audience on one chain with one key."""

    def __init__(self, account: LocalAccount, *, audience: str, chain_id: int) -> None:
        self.signer = MessageSigner(account)  # the key parsed once: the heartbeat is the hottest route
        self.audience = audience
        self.chain_id = chain_id

    def header(self, body: bytes, *, node: str, request_nonce: str) -> dict[str, str]:
        value = sign_reply(
            self.signer,
            body=body,
            node=node,
            request_nonce=request_nonce,
            audience=self.audience,
            chain_id=self.chain_id,
        )
        return {REPLY_AUTH_HEADER: value}


class ReplyRefusedError(PrimenetError, ValueError):
    """A reply the miner must not act on; `code` names the check that failed (see the module docstring)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


@dataclass(frozen=True)
class ExpectedReply:
    """What the request that was sent makes a reply answer to."""

    node: str
    request_nonce: str
    audience: str
    chain_id: int


class ReplyVerifier:
    """The miner's side: `await verify(header, body, expected)` returns the proven signer or raises
    `ReplyRefusedError`. `authorize(signer)` says whether the signer is the pool's orchestrator key."""

    def __init__(self, authorize: Authorizer) -> None:
        self.authorize = authorize

    async def verify(self, header: str | None, body: bytes, expected: ExpectedReply) -> str:
        claims = check_claims(header, body, expected)
        signer = recover_reply_signer(claims)
        if not await self.authorize(signer):
            raise ReplyRefusedError(
                "reply_signer_unauthorized", f"{signer} is not the orchestrator key of this node's pool"
            )
        return signer


def check_claims(header: str | None, body: bytes, expected: ExpectedReply) -> SignedReply:
    """Every check that needs no signature recovery, in order: present, parses, answers `expected`, body hash."""
    if not header:
        raise ReplyRefusedError("reply_unsigned", f"the reply has no {REPLY_AUTH_HEADER} header")
    if len(header) > MAX_HEADER_CHARS:
        raise ReplyRefusedError("reply_malformed", f"{REPLY_AUTH_HEADER} is longer than {MAX_HEADER_CHARS}")
    try:
        claims = SignedReply.model_validate_json(header)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "header"
        raise ReplyRefusedError("reply_malformed", f"{REPLY_AUTH_HEADER}: {where}: {first['msg']}") from None
    wrong = [
        name
        for name, got, want in (
            ("node", claims.node.lower(), expected.node.lower()),
            ("request_nonce", claims.request_nonce, expected.request_nonce),
            ("audience", claims.audience, expected.audience),
            ("chain_id", claims.chain_id, expected.chain_id),
        )
        if got != want
    ]
    if wrong:
        raise ReplyRefusedError(
            "reply_wrong_request", f"the reply answers another request ({', '.join(wrong)} differ): a replay?"
        )
    if hashlib.sha256(body).hexdigest() != claims.body_sha256:
        raise ReplyRefusedError("reply_body_mismatch", "the reply body is not the one that was signed")
    return claims


def recover_reply_signer(claims: SignedReply) -> str:
    """The lower-case address that signed `claims`; `reply_signature_invalid` unless it is `claims.signer`."""
    try:
        signer = recover_digest_signer(eip191_digest(claims.message()), parse_signature(claims.signature))
    except (SignatureFormatError, RecoveryError) as exc:
        raise ReplyRefusedError("reply_signature_invalid", str(exc)) from None
    if signer != claims.signer.lower():
        raise ReplyRefusedError("reply_signature_invalid", f"the signature is not by {claims.signer}")
    return signer
