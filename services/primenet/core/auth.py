"""Signed requests between primenet services.

A client signs a statement of the request it is about to send: method, path with query, SHA-256 of the
exact body bytes, the audience (who may accept it), chain id, timestamp and a single-use nonce. The
statement travels in the `X-Primenet-Auth` header as compact JSON with the EIP-191 signature.

The server proves the statement is the signer's (signature recovers to the claimed address) and that it
describes this request (every claim equals what was received). Because the claims travel with the
signature, each kind of failure gets its own error code instead of one "bad signature", which makes a
misconfigured client (wrong chain, wrong audience, proxy rewriting paths) easy to diagnose. Replay is
stopped by the timestamp window plus a per-signer nonce kept in Redis for longer than that window.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Generator, Iterable
from dataclasses import dataclass
from typing import Protocol

import httpx
import structlog
from eth_account.signers.local import LocalAccount
from fastapi import Request
from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from redis.asyncio import Redis

from primenet.core.errors import ApiError
from primenet.core.signing import (
    RecoveryError,
    SignatureFormatError,
    eip191_digest,
    parse_signature,
    recover_digest_signer,
    sign_message,
)

AUTH_HEADER = "X-Primenet-Auth"
SCHEME = "primenet-request/v1"

log = structlog.get_logger(__name__)
REJECTIONS = Counter("primenet_auth_rejections", "Signed requests refused, by error code", ["code"])


class AuthClaims(BaseModel):
    """What the signer states about the request; every field is covered by the signature."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    address: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$")
    method: str = Field(pattern=r"^[A-Z]{3,10}$")
    path: str = Field(pattern=r"^/[\x21-\x7e]*$", max_length=4096)
    body_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    audience: str = Field(pattern=r"^[\x21-\x7e]{1,128}$")
    chain_id: int = Field(ge=0)
    timestamp: int = Field(ge=0)
    nonce: str = Field(pattern=r"^[A-Za-z0-9_-]{16,64}$")

    def message(self) -> bytes:
        """The exact text that is personal_signed; line-based so a wallet can show it to a person."""
        return (
            f"{SCHEME}\n"
            f"method: {self.method}\n"
            f"path: {self.path}\n"
            f"body-sha256: {self.body_sha256}\n"
            f"audience: {self.audience}\n"
            f"chain-id: {self.chain_id}\n"
            f"timestamp: {self.timestamp}\n"
            f"nonce: {self.nonce}"
        ).encode()


class SignedHeader(AuthClaims):
    signature: str = Field(max_length=140)


def new_nonce() -> str:
    return secrets.token_urlsafe(18)  # 24 characters, 144 bits


def sign_request(
    account: LocalAccount,
    *,
    method: str,
    path: str,
    body: bytes,
    audience: str,
    chain_id: int,
    timestamp: int | None = None,
    nonce: str | None = None,
) -> str:
    """The `X-Primenet-Auth` header value for one request."""
    claims = AuthClaims(
        address=account.address,
        method=method.upper(),
        path=path,
        body_sha256=hashlib.sha256(body).hexdigest(),
        audience=audience,
        chain_id=chain_id,
        timestamp=int(time.time()) if timestamp is None else timestamp,
        nonce=nonce or new_nonce(),
    )
    signature = sign_message(account, claims.message())
    return SignedHeader(**claims.model_dump(), signature=signature).model_dump_json()


class RequestSigner(httpx.Auth):
    """httpx auth that signs every request it sends for one audience on one chain."""

    requires_request_body = True

    def __init__(self, account: LocalAccount, *, audience: str, chain_id: int) -> None:
        self.account = account
        self.audience = audience
        self.chain_id = chain_id

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers[AUTH_HEADER] = sign_request(
            self.account,
            method=request.method,
            path=request.url.raw_path.decode("ascii"),
            body=request.content,
            audience=self.audience,
            chain_id=self.chain_id,
        )
        yield request


# --- authorization: who may call, after the signature is proven ------------------------------------

Authorizer = Callable[[str], Awaitable[bool]]
"""Given the signer's lower-case address, whether it may call this route."""


async def allow_any(_: str) -> bool:
    return True


def allow_addresses(addresses: Iterable[str]) -> Authorizer:
    allowed = frozenset(address.lower() for address in addresses)

    async def is_allowed(address: str) -> bool:
        return address in allowed

    return is_allowed


def cached(authorizer: Authorizer, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> Authorizer:
    """Remember answers (yes and no) for `ttl_s`, e.g. in front of an on-chain role lookup."""
    answers: dict[str, tuple[float, bool]] = {}

    async def is_allowed(address: str) -> bool:
        now = clock()
        hit = answers.get(address)
        if hit is not None and hit[0] > now:
            return hit[1]
        answer = await authorizer(address)
        if len(answers) > 100_000:  # bound memory against a flood of distinct signers
            answers.clear()
        answers[address] = (now + ttl_s, answer)
        return answer

    return is_allowed


# --- the server side ------------------------------------------------------------------------------


class AuthPolicy(BaseModel):
    """Tunable limits of request authentication; part of each service's settings."""

    timestamp_window_s: int = Field(60, ge=1, description="how old a signed request may be")
    future_skew_s: int = Field(5, ge=0, description="how far ahead of our clock a timestamp may be")
    rate_limit: int = Field(300, ge=1, description="signed requests per signer per rate window")
    rate_window_s: int = Field(60, ge=1)
    max_body_bytes: int = Field(2 * 1024 * 1024, ge=0, description="larger bodies get 413")


@dataclass(frozen=True)
class Signer:
    """The proven caller of a signed request."""

    address: str  # lower-case 0x hex
    nonce: str


# Rate limiting runs before the nonce claim so that a throttled request does not burn its nonce and can
# be retried as is. One call admits a whole batch: KEYS are (nonce key, rate key) pairs, the result is one
# outcome per pair: 0 admitted, -1 nonce already used, n > 0 throttled for n more seconds.
_ADMIT_SCRIPT = """
local out = {}
for i = 1, #KEYS / 2 do
  local nonce_key, rate_key = KEYS[2 * i - 1], KEYS[2 * i]
  local count = redis.call('INCR', rate_key)
  if count == 1 then redis.call('EXPIRE', rate_key, ARGV[3]) end
  if count > tonumber(ARGV[2]) then
    out[i] = redis.call('TTL', rate_key) + 1
  elseif redis.call('SET', nonce_key, '1', 'NX', 'EX', ARGV[1]) then
    out[i] = 0
  else
    out[i] = -1
  end
end
return out
"""


class Admission(Protocol):
    async def admit(self, nonce_key: str, rate_key: str) -> int:
        """0: admitted; -1: the nonce was used before; n > 0: throttled for n more seconds."""
        ...


class MemoryAdmission:
    """Nonces and rate counts in this process, with the same outcomes as the Redis script.

    A restart forgets them, which leaves a replay window of at most the timestamp window right after it.
    """

    MAX_KEYS = 200_000  # bound memory against a flood; the oldest go first (they expire first too)

    def __init__(self, *, nonce_ttl_s: int, rate_limit: int, clock: Callable[[], float]) -> None:
        self._nonce_ttl_s = nonce_ttl_s
        self._rate_limit = rate_limit
        self._clock = clock
        self._nonces: OrderedDict[str, float] = OrderedDict()  # key -> expiry, in insertion (= expiry) order
        self._counts: dict[str, int] = {}  # rate key (signer + window number) -> requests

    async def admit(self, nonce_key: str, rate_key: str) -> int:
        now = self._clock()
        while self._nonces and (next(iter(self._nonces.values())) <= now or len(self._nonces) > self.MAX_KEYS):
            self._nonces.popitem(last=False)
        if len(self._counts) > self.MAX_KEYS:
            self._counts.clear()
        count = self._counts[rate_key] = self._counts.get(rate_key, 0) + 1
        if count > self._rate_limit:
            return 1
        if nonce_key in self._nonces:
            return -1
        self._nonces[nonce_key] = now + self._nonce_ttl_s
        return 0


class _AdmissionBatcher:
    """Sends the admissions of all requests that arrive within one event-loop tick as one Redis call.

    A Redis round trip through redis-py costs about 2.5 signature recoveries; batching lets a busy server
    pay it once per tick instead of once per request, while a lone request still costs one round trip.
    (All keys of a batch go to one server, so this needs a single Redis, not a cluster.)
    """

    def __init__(self, redis: Redis, *, nonce_ttl_s: int, rate_limit: int, rate_window_s: int) -> None:
        self._script = redis.register_script(_ADMIT_SCRIPT)
        self._args = [nonce_ttl_s, rate_limit, rate_window_s]
        self._pending: list[tuple[str, str, asyncio.Future[int]]] = []
        self._in_flight: set[asyncio.Task[None]] = set()

    async def admit(self, nonce_key: str, rate_key: str) -> int:
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future[int] = loop.create_future()
        self._pending.append((nonce_key, rate_key, outcome))
        if len(self._pending) == 1:
            loop.call_soon(self._flush)
        return await outcome

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        task = asyncio.create_task(self._send(batch))
        self._in_flight.add(task)  # keep a reference until done (the loop holds tasks weakly)
        task.add_done_callback(self._in_flight.discard)

    async def _send(self, batch: list[tuple[str, str, asyncio.Future[int]]]) -> None:
        try:
            keys = [key for nonce_key, rate_key, _ in batch for key in (nonce_key, rate_key)]
            outcomes = await self._script(keys=keys, args=self._args)
        except asyncio.CancelledError:
            for _, _, future in batch:
                future.cancel()
            raise
        except Exception as exc:  # Redis down or erroring: every waiting request sees it
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, _, future), outcome in zip(batch, outcomes, strict=True):
            if not future.done():
                future.set_result(int(outcome))


def _reject(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> ApiError:
    REJECTIONS.labels(code).inc()
    log.info("signed request refused", code=code, reason=message)
    return ApiError(status, code, message, headers=headers)


_AUTH_HEADER_KEY = AUTH_HEADER.lower().encode("latin-1")


def _auth_header(request: Request) -> str | None:
    """The auth header straight from the ASGI scope: cheaper than building Starlette's `Headers` per request."""
    for name, value in request.scope["headers"]:
        if name == _AUTH_HEADER_KEY:
            return str(value.decode("latin-1"))
    return None


def received_path(request: Request) -> str:
    """Path and query exactly as they arrived on the wire (percent-encoding untouched)."""
    raw = request.scope.get("raw_path")
    # Some ASGI servers put the query into raw_path too; the query string is taken from its own field.
    path = raw.split(b"?", 1)[0].decode("latin-1") if raw else request.url.path
    query = request.scope.get("query_string", b"")
    return f"{path}?{query.decode('latin-1')}" if query else path


class RequestAuthenticator:
    """FastAPI dependency: `signer: Annotated[Signer, Depends(authenticator)]`.

    `audience` names the receiving service (its address or role name) so that a request signed for one
    service cannot be replayed against another; `authorize` decides who may call after the signature is
    proven.
    """

    def __init__(
        self,
        *,
        redis: Redis | None,
        audience: str,
        chain_id: int,
        policy: AuthPolicy | None = None,
        authorize: Authorizer = allow_any,
        clock: Callable[[], float] = time.time,
        key_prefix: str = "auth",
    ) -> None:
        """`redis=None` keeps nonces and rate counts in this process (`MemoryAdmission`): for a lone process
        such as a miner on a GPU host; services that may run several workers pass their Redis."""
        self.audience = audience
        self.chain_id = chain_id
        self.policy = policy or AuthPolicy()
        self.authorize = authorize
        self.clock = clock
        self.key_prefix = key_prefix
        # A nonce must outlive every timestamp that could still be accepted with it.
        nonce_ttl_s = self.policy.timestamp_window_s + self.policy.future_skew_s + 1
        self._admissions: Admission = (
            MemoryAdmission(nonce_ttl_s=nonce_ttl_s, rate_limit=self.policy.rate_limit, clock=clock)
            if redis is None
            else _AdmissionBatcher(
                redis,
                nonce_ttl_s=nonce_ttl_s,
                rate_limit=self.policy.rate_limit,
                rate_window_s=self.policy.rate_window_s,
            )
        )

    async def __call__(self, request: Request) -> Signer:
        header = _auth_header(request)
        if not header:
            raise _reject(401, "auth_missing", f"missing {AUTH_HEADER} header: this route needs a signed request")
        claims = self._parse(header)
        self._check_binding(claims, request.method, received_path(request))
        body = await request.body()
        if hashlib.sha256(body).hexdigest() != claims.body_sha256:
            raise _reject(401, "body_mismatch", "the body is not the one that was signed")
        address = self._recover(claims)
        if not await self.authorize(address):
            raise _reject(403, "signer_unauthorized", f"{address} is not allowed to call this route")
        await self._admit_once(address, claims.nonce)
        return Signer(address=address, nonce=claims.nonce)

    def _parse(self, header: str) -> SignedHeader:
        try:
            return SignedHeader.model_validate_json(header)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "header"
            raise _reject(400, "auth_malformed", f"{AUTH_HEADER} is malformed: {where}: {first['msg']}") from None

    def _check_binding(self, claims: AuthClaims, method: str, path: str) -> None:
        """Cheap comparisons first, so forged traffic costs no signature recovery."""
        if claims.audience != self.audience:
            raise _reject(
                401,
                "audience_mismatch",
                f"signed for audience {claims.audience!r}, this is {self.audience!r}",
            )
        if claims.chain_id != self.chain_id:
            raise _reject(
                401, "chain_id_mismatch", f"signed for chain {claims.chain_id}, this is chain {self.chain_id}"
            )
        now = self.clock()
        if claims.timestamp < now - self.policy.timestamp_window_s:
            raise _reject(
                401,
                "timestamp_expired",
                f"signed {int(now - claims.timestamp)} s ago; the window is "
                f"{self.policy.timestamp_window_s} s (check the client's clock)",
            )
        if claims.timestamp > now + self.policy.future_skew_s:
            raise _reject(
                401,
                "timestamp_in_future",
                f"timestamp is {int(claims.timestamp - now)} s ahead of this server's clock",
            )
        if claims.method != method:
            raise _reject(401, "method_mismatch", f"signed for {claims.method}, received {method}")
        if claims.path != path:
            raise _reject(401, "path_mismatch", f"signed for path {claims.path!r}, received {path!r}")

    def _recover(self, claims: SignedHeader) -> str:
        try:
            signature = parse_signature(claims.signature)
        except SignatureFormatError as exc:
            raise _reject(400, "signature_malformed", str(exc)) from None
        try:
            address = recover_digest_signer(eip191_digest(claims.message()), signature)
        except RecoveryError:
            raise _reject(401, "signature_invalid", "no key recovers from this signature") from None
        if address != claims.address.lower():
            raise _reject(401, "signature_mismatch", f"the signature is not by {claims.address}")
        return address

    async def _admit_once(self, address: str, nonce: str) -> None:
        window = self.policy.rate_window_s
        outcome = await self._admissions.admit(
            f"{self.key_prefix}:nonce:{address}:{nonce}",
            f"{self.key_prefix}:rate:{address}:{int(self.clock()) // window}",
        )
        if outcome == -1:
            raise _reject(401, "nonce_replayed", "this nonce was already used: the request is a replay")
        if outcome > 0:
            raise _reject(
                429,
                "rate_limited",
                f"more than {self.policy.rate_limit} signed requests in {window} s",
                headers={"Retry-After": str(outcome)},
            )


def signer_from_state(field: str) -> Callable[[Request], Awaitable[Signer]]:
    """A route dependency: the signer proven by the `RequestAuthenticator` that create_app put on app.state.<field>."""

    async def proven_signer(request: Request) -> Signer:
        authenticate: RequestAuthenticator = getattr(request.app.state, field)
        return await authenticate(request)

    return proven_signer
