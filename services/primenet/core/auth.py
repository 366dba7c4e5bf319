"""Signed requests between primenet services.

A client signs a statement of the request it is about to send: method, path with query, SHA-256 of the
exact body bytes, the audience (who may accept it), chain id, timestamp and a single-use nonce. The
statement travels in the `X-Primenet-Auth` header as compact JSON with the EIP-191 signature.

The server proves the statement is the signer's (signature recovers to the claimed address) and that it
describes this request (every claim equals what was received). Because the claims travel with the
signature, each kind of failure gets its own error code instead of one "bad signature", which makes a
misconfigured client (wrong chain, wrong audience, proxy rewriting paths) easy to diagnose. Replay is
stopped by the timestamp window plus a per-signer nonce kept for longer than that window (in Redis, or in
the process for a lone service such as the miner).

The checks run cheapest first, so that whatever an attacker can send for free costs the server little:

1. the header is present;
2. the client's IP (IPv6: its /64) is under its budget (`IpLimiter`, in process): 429 `ip_rate_limited`, before
   any parsing, hashing, signature recovery or lookup; many throwaway keys from one host share this budget;
3. the claims parse and match this request (audience, chain, time window, method, path, body hash);
4. the signature recovers to the claimed address; only low-s (EIP-2) signatures are accepted;
5. the signer is authorized (`Authorizer`; chain lookups go through `cached`, which remembers "no" as well
   as "yes", so a stream of unknown addresses costs at most one lookup each per TTL);
6. admission, last: the per-signer rate limit, then the nonce is recorded once. Only a signer that passed
   every check above is admitted, so refused traffic never fills the nonce store; and when the store holds
   `nonce_capacity` unexpired nonces, new requests are refused (503 `nonce_store_full`) rather than any
   unexpired nonce being forgotten, which would reopen the replay of a sniffed request.

A request refused at any step before 6 has not used its nonce and can be corrected and sent again.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import math
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
from redis.exceptions import OutOfMemoryError

from primenet.core.errors import ApiError
from primenet.core.models import MAX_INT64, MAX_UNIX_TIME
from primenet.core.signing import (
    NonCanonicalSignatureError,
    RecoveryError,
    SignatureFormatError,
    eip191_digest,
    parse_signature,
    recover_digest_signer,
    sign_message,
)

AUTH_HEADER = "X-Primenet-Auth"
MAX_AUTH_HEADER_CHARS = 6144  # the longest valid header (a 4096-character path) fits with room to spare
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
    chain_id: int = Field(ge=0, le=MAX_INT64)
    timestamp: int = Field(ge=0, le=int(MAX_UNIX_TIME))
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


def orchestrator_audience(pools_contract: str, pool_id: int) -> str:
    """The audience of requests to the orchestrator of one pool: `orchestrator:<pool id>:<ComputePool address>`.

    Both the pool id and the deployment's pool contract are in it, so a heartbeat signed for pool 1 is refused by
    pool 2's orchestrator, and one for pool 0 of one deployment by pool 0 of another deployment on the same chain.
    """
    return f"orchestrator:{pool_id}:{pools_contract.lower()}"


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


class _Answers:
    """Answers of one kind (yes or no) with their expiry, oldest first; at most `max_entries` of them."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self.entries: OrderedDict[str, float] = OrderedDict()  # address -> expiry; one TTL, so also expiry order

    def get(self, address: str, now: float) -> bool:
        expiry = self.entries.get(address)
        return expiry is not None and expiry > now

    def put(self, address: str, expiry: float, now: float) -> None:
        entries = self.entries
        entries.pop(address, None)
        while entries and (next(iter(entries.values())) <= now or len(entries) >= self.max_entries):
            entries.popitem(last=False)  # a forgotten answer costs one more lookup later, never a wrong one
        entries[address] = expiry


def cached(
    authorizer: Authorizer,
    ttl_s: float,
    clock: Callable[[], float] = time.monotonic,
    *,
    max_entries: int = 100_000,
    max_allowed: int = 10_000,
    refused_ttl_s: float | None = None,
) -> Authorizer:
    """Remember answers, "yes" for `ttl_s` and "no" for `refused_ttl_s` (default: the same), e.g. in front of an
    on-chain role lookup.

    An address that is not allowed costs one lookup per `ttl_s`, however often it is presented; concurrent
    requests for the same address share one lookup. Refusals and approvals are kept apart (at most
    `max_entries` and `max_allowed`, the oldest forgotten first), so a flood of unknown addresses never pushes
    out the answers of the few real callers. A lookup that fails (e.g. the chain is down) is not remembered.
    """
    allowed, refused = _Answers(max_allowed), _Answers(max_entries)
    no_ttl_s = ttl_s if refused_ttl_s is None else refused_ttl_s
    in_flight: dict[str, asyncio.Future[bool]] = {}

    async def is_allowed(address: str) -> bool:
        now = clock()
        if allowed.get(address, now):
            return True
        if refused.get(address, now):
            return False
        while (pending := in_flight.get(address)) is not None:
            await asyncio.wait([pending])  # raises only if this request is cancelled, not if the lookup was
            if not pending.cancelled():
                return pending.result()  # the shared answer, or the lookup's error
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        in_flight[address] = future
        try:
            answer = await authorizer(address)
        except asyncio.CancelledError:
            future.cancel()  # a waiter then does the lookup itself
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # marked retrieved: waiters re-raise it, asyncio need not warn about it
            raise
        else:
            future.set_result(answer)
            now = clock()
            if answer:
                allowed.put(address, now + ttl_s, now)
            else:
                refused.put(address, now + no_ttl_s, now)
            return answer
        finally:
            del in_flight[address]

    return is_allowed


def cached_members(
    load: Callable[[], Awaitable[Iterable[str]]], ttl_s: float, clock: Callable[[], float] = time.monotonic
) -> Authorizer:
    """Allow the addresses of a small set that is read whole, e.g. a pool's creator and compute manager.

    One `load` per `ttl_s`, however many distinct addresses are presented (a per-address cache would pay one
    lookup for every throwaway key); concurrent callers share the lookup; a failed load is not remembered.
    """
    members: frozenset[str] = frozenset()
    expiry = -math.inf
    lock = asyncio.Lock()

    async def is_allowed(address: str) -> bool:
        nonlocal members, expiry
        if clock() >= expiry:
            async with lock:
                if clock() >= expiry:  # another caller may have refreshed it while we waited
                    members = frozenset(member.lower() for member in await load())
                    expiry = clock() + ttl_s
        return address in members

    return is_allowed


# --- the server side ------------------------------------------------------------------------------


class AuthPolicy(BaseModel):
    """Tunable limits of request authentication; part of each service's settings."""

    timestamp_window_s: int = Field(60, ge=1, description="how old a signed request may be")
    future_skew_s: int = Field(5, ge=0, description="how far ahead of our clock a timestamp may be")
    rate_limit: int = Field(300, ge=1, description="signed requests per signer per rate window")
    rate_window_s: int = Field(60, ge=1)
    ip_rate_limit: int = Field(
        1200,
        ge=0,
        description="signed requests per client IP (IPv6: per /64) per rate window, counted in each process before "
        "any signature is recovered; 0: no per-IP limit",
    )
    nonce_capacity: int = Field(
        200_000,
        ge=1,
        description="unexpired nonces kept per authenticator; when full, new requests get 503 nonce_store_full "
        "(an unexpired nonce is never forgotten early)",
    )
    max_body_bytes: int = Field(2 * 1024 * 1024, ge=0, description="larger bodies get 413")

    @property
    def nonce_ttl_s(self) -> int:
        """A nonce must outlive every timestamp that could still be accepted with it."""
        return self.timestamp_window_s + self.future_skew_s + 1


@dataclass(frozen=True)
class Signer:
    """The proven caller of a signed request."""

    address: str  # lower-case 0x hex
    nonce: str


# --- per-IP budget, before any costly work -------------------------------------------------------


class IpLimiter:
    """Requests per client network per fixed window, counted in this process (no Redis round trip, no parsing).

    IPv4 addresses count one by one, IPv6 addresses by /64 (one host usually holds a whole /64). Memory is
    bounded: the table starts empty in each window, and while it holds `max_clients` networks a network not yet
    in it is refused, never one already counted forgotten (which would hand its budget back).
    """

    def __init__(
        self, *, limit: int, window_s: int, clock: Callable[[], float] = time.time, max_clients: int = 100_000
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self.max_clients = max_clients
        self._window = -1
        self._counts: dict[str, int] = {}

    @staticmethod
    def network_of(host: str | None) -> str:
        """The key a client is counted under: its IPv4 address, its IPv6 /64, or the host string as given."""
        if host is None:
            return "-"
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return host  # e.g. a Unix socket peer name: counted as is
        if isinstance(address, ipaddress.IPv6Address):
            if address.ipv4_mapped is not None:
                return str(address.ipv4_mapped)
            return str(ipaddress.IPv6Network((address, 64), strict=False))
        return str(address)

    def check(self, host: str | None) -> int:
        """0: counted and allowed; n > 0: refused, the window ends in n seconds."""
        if self.limit == 0:
            return 0
        now = self.clock()
        window = int(now) // self.window_s
        if window != self._window:
            self._window, self._counts = window, {}
        key = self.network_of(host)
        count = self._counts.get(key)
        if count is None and len(self._counts) >= self.max_clients:
            count = self.limit  # a full table refuses newcomers for the rest of the window
        elif count is None or count < self.limit:
            self._counts[key] = (count or 0) + 1
            return 0
        return max(1, (window + 1) * self.window_s - int(now))


# --- admission: per-signer rate, then the nonce, once ----------------------------------------------

ADMITTED = 0
REPLAYED = -1
STORE_FULL = -2


# Rate limiting runs before the nonce claim so that a throttled request does not burn its nonce and can
# be retried as is; a replay is recognised even when the store is full. One call admits a whole batch:
# KEYS are first the `ARGV[5]` live-count buckets (newest first), then (nonce key, rate key) pairs. The result
# is one outcome per pair: 0 admitted, -1 nonce already used, -2 the nonce store is full, n > 0 throttled for
# n more seconds. The live count is the sum of per-bucket counts of nonces set, each bucket expiring once all
# its nonces have: a slight overestimate of the unexpired nonces, never an underestimate.
_ADMIT_SCRIPT = """
local buckets = tonumber(ARGV[5])
local live = 0
for j = 1, buckets do
  live = live + tonumber(redis.call('GET', KEYS[j]) or '0')
end
local capacity, added, out = tonumber(ARGV[4]), 0, {}
for i = 1, (#KEYS - buckets) / 2 do
  local nonce_key, rate_key = KEYS[buckets + 2 * i - 1], KEYS[buckets + 2 * i]
  local count = redis.call('INCR', rate_key)
  if count == 1 then redis.call('EXPIRE', rate_key, ARGV[3]) end
  if count > tonumber(ARGV[2]) then
    out[i] = redis.call('TTL', rate_key) + 1
  elseif redis.call('EXISTS', nonce_key) == 1 then
    out[i] = -1
  elseif live + added >= capacity then
    out[i] = -2
  else
    redis.call('SET', nonce_key, '1', 'EX', ARGV[1])
    added = added + 1
    out[i] = 0
  end
end
if added > 0 then
  redis.call('INCRBY', KEYS[1], added)
  redis.call('EXPIRE', KEYS[1], ARGV[6])
end
return out
"""


class Admission(Protocol):
    async def admit(self, nonce_key: str, rate_key: str) -> int:
        """0: admitted; -1: the nonce was used before; -2: the nonce store is full; n > 0: throttled for n s."""
        ...


class MemoryAdmission:
    """Nonces and rate counts in this process, with the same outcomes as the Redis script.

    At most `capacity` unexpired nonces are kept; while that many are, new nonces are refused (-2), never an
    unexpired one dropped. A restart forgets them, which leaves a replay window of at most the timestamp window
    right after it.
    """

    def __init__(
        self, *, nonce_ttl_s: int, rate_limit: int, clock: Callable[[], float], capacity: int = 200_000
    ) -> None:
        self._nonce_ttl_s = nonce_ttl_s
        self._rate_limit = rate_limit
        self._clock = clock
        self.capacity = capacity
        self._nonces: OrderedDict[str, float] = OrderedDict()  # key -> expiry, in insertion (= expiry) order
        self._counts: dict[str, int] = {}  # rate key (signer + window number) -> requests

    async def admit(self, nonce_key: str, rate_key: str) -> int:
        now = self._clock()
        while self._nonces and next(iter(self._nonces.values())) <= now:
            self._nonces.popitem(last=False)  # expired: its timestamp is refused anyway
        if len(self._counts) > self.capacity:
            self._counts.clear()  # bounded: only admitted signers reach here, each at most rate_limit times
        count = self._counts[rate_key] = self._counts.get(rate_key, 0) + 1
        if count > self._rate_limit:
            return 1
        if nonce_key in self._nonces:
            return REPLAYED
        if len(self._nonces) >= self.capacity:
            return STORE_FULL
        self._nonces[nonce_key] = now + self._nonce_ttl_s
        return ADMITTED


class _AdmissionBatcher:
    """Sends the admissions of all requests that arrive within one event-loop tick as one Redis call.

    A Redis round trip through redis-py costs about 2.5 signature recoveries; batching lets a busy server
    pay it once per tick instead of once per request, while a lone request still costs one round trip.
    (All keys of a batch go to one server, so this needs a single Redis, not a cluster.)
    """

    def __init__(
        self,
        redis: Redis,
        *,
        nonce_ttl_s: int,
        rate_limit: int,
        rate_window_s: int,
        capacity: int,
        count_prefix: str,
        clock: Callable[[], float],
    ) -> None:
        self._script = redis.register_script(_ADMIT_SCRIPT)
        # Live nonces are counted in buckets of `bucket_s`; a nonce set in bucket b expires by bucket b + spans.
        self._bucket_s = max(1, math.ceil(nonce_ttl_s / 8))
        self._spans = math.ceil(nonce_ttl_s / self._bucket_s)
        self._count_prefix = count_prefix
        self._clock = clock
        self._args = [
            nonce_ttl_s,
            rate_limit,
            rate_window_s,
            capacity,
            self._spans + 1,
            (self._spans + 2) * self._bucket_s,
        ]
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

    def _bucket_keys(self) -> list[str]:
        current = int(self._clock()) // self._bucket_s
        return [f"{self._count_prefix}:{current - age}" for age in range(self._spans + 1)]

    async def _send(self, batch: list[tuple[str, str, asyncio.Future[int]]]) -> None:
        try:
            keys = self._bucket_keys() + [key for nonce_key, rate_key, _ in batch for key in (nonce_key, rate_key)]
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

    `audience` names the receiving service (its address, role name, or `orchestrator_audience(...)`) so that a
    request signed for one service cannot be replayed against another; `authorize` decides who may call, after
    the signature is proven and before the request is admitted (its nonce recorded), so that refused callers
    never fill the nonce store. A refused signer gets 403 `refusal_code`, with `refusal_reason` after its address.
    `ip_limiter` may be shared by the authenticators of one app so that a client has one per-IP budget there.
    The order of the checks is in this module's docstring.
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
        ip_limiter: IpLimiter | None = None,
        refusal_code: str = "signer_unauthorized",
        refusal_reason: str = "is not allowed to call this route",
    ) -> None:
        """`redis=None` keeps nonces and rate counts in this process (`MemoryAdmission`): for a lone process
        such as a miner on a GPU host; services that may run several workers pass their Redis."""
        self.audience = audience
        self.chain_id = chain_id
        self.policy = policy = policy or AuthPolicy()
        self.authorize = authorize
        self.clock = clock
        self.key_prefix = key_prefix
        self.refusal_code = refusal_code
        self.refusal_reason = refusal_reason
        self.ip_limiter = ip_limiter or IpLimiter(
            limit=policy.ip_rate_limit, window_s=policy.rate_window_s, clock=clock
        )
        self._admissions: Admission = (
            MemoryAdmission(
                nonce_ttl_s=policy.nonce_ttl_s,
                rate_limit=policy.rate_limit,
                clock=clock,
                capacity=policy.nonce_capacity,
            )
            if redis is None
            else _AdmissionBatcher(
                redis,
                nonce_ttl_s=policy.nonce_ttl_s,
                rate_limit=policy.rate_limit,
                rate_window_s=policy.rate_window_s,
                capacity=policy.nonce_capacity,
                count_prefix=f"{key_prefix}:live",
                clock=clock,
            )
        )

    async def __call__(self, request: Request) -> Signer:
        header = _auth_header(request)
        if not header:
            raise _reject(401, "auth_missing", f"missing {AUTH_HEADER} header: this route needs a signed request")
        client = request.scope.get("client")
        wait_s = self.ip_limiter.check(client[0] if client else None)
        if wait_s:
            raise _reject(
                429,
                "ip_rate_limited",
                f"more than {self.ip_limiter.limit} signed requests from this address in {self.ip_limiter.window_s} s",
                headers={"Retry-After": str(wait_s)},
            )
        claims = self._parse(header)
        self._check_binding(claims, request.method, received_path(request))
        body = await request.body()
        if hashlib.sha256(body).hexdigest() != claims.body_sha256:
            raise _reject(401, "body_mismatch", "the body is not the one that was signed")
        address = self._recover(claims)
        if not await self.authorize(address):
            raise _reject(403, self.refusal_code, f"{address} {self.refusal_reason}")
        await self._admit_once(address, claims.nonce)
        return Signer(address=address, nonce=claims.nonce)

    def _parse(self, header: str) -> SignedHeader:
        if len(header) > MAX_AUTH_HEADER_CHARS:
            raise _reject(400, "auth_malformed", f"{AUTH_HEADER} is longer than {MAX_AUTH_HEADER_CHARS} characters")
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
        except NonCanonicalSignatureError as exc:
            raise _reject(400, "signature_not_canonical", str(exc)) from None
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
        try:
            outcome = await self._admissions.admit(
                f"{self.key_prefix}:nonce:{address}:{nonce}",
                f"{self.key_prefix}:rate:{address}:{int(self.clock()) // window}",
            )
        except OutOfMemoryError:  # Redis at maxmemory (policy noeviction): the same refusal as a full store
            outcome = STORE_FULL
        if outcome == REPLAYED:
            raise _reject(401, "nonce_replayed", "this nonce was already used: the request is a replay")
        if outcome == STORE_FULL:
            # Refuse rather than forget an unexpired nonce: forgetting one would let its request be replayed.
            raise _reject(
                503,
                "nonce_store_full",
                f"{self.policy.nonce_capacity} unexpired nonces are held; retry when some expire",
                headers={"Retry-After": str(max(1, math.ceil(self.policy.nonce_ttl_s / 8)))},
            )
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
