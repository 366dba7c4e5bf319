"""How fast is request authentication, compared with the signature recovery it cannot avoid?

Measures in one run, on one core:
  raw      coincurve public-key recoveries per second (+ keccak to an address): the floor of the cost;
  verify   the server dependency (`RequestAuthenticator`) on distinct, valid signed requests, against a
           real Redis (nonce claim + rate window in one round trip), awaited one at a time;
  verify*  the same with 64 requests in flight, as a busy server sees them.
Target: verify reaches at least half of raw. Prints the ratio; exits 1 when under target.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from coincurve import PrivateKey, PublicKey
from eth_account import Account
from eth_hash.auto import keccak
from starlette.requests import Request
from starlette.types import Message

from primenet.core.auth import AUTH_HEADER, AuthPolicy, RequestAuthenticator, sign_request
from primenet.core.redisdb import connect
from primenet.devnet.local import Devnet, DevnetSettings
from primenet.devnet.processes import free_port, stop
from results import record

AUDIENCE = "bench"
CHAIN_ID = 31337
TARGET_RATIO = 0.5
BODY = b'{"address":"0x0000000000000000000000000000000000000001","task_state":"RUNNING"}'


def raw_recoveries_per_s(n: int) -> float:
    """Recover n distinct signatures by 64 keys, as a server meets them, in a tight loop."""
    keys = [PrivateKey() for _ in range(64)]
    signed = []
    for i in range(n):
        digest = keccak(i.to_bytes(8, "big"))
        signed.append((keys[i % 64].sign_recoverable(digest, hasher=None), digest))
    start = time.perf_counter()
    for signature, digest in signed:
        public = PublicKey.from_signature_and_message(signature, digest, hasher=None)
        keccak(public.format(compressed=False)[1:])[-20:]
    return n / (time.perf_counter() - start)


def make_request(header: str) -> Request:
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/heartbeat",
        "raw_path": b"/heartbeat",
        "query_string": b"",
        "headers": [(AUTH_HEADER.lower().encode(), header.encode()), (b"content-type", b"application/json")],
    }

    async def receive() -> Message:
        return {"type": "http.request", "body": BODY, "more_body": False}

    return Request(scope, receive)


async def verifications_per_s(redis_url: str, n: int, in_flight: int) -> float:
    redis = connect(redis_url)
    await redis.flushdb()
    # Many signers, as a real orchestrator sees, so the rate limit never trips.
    accounts = [Account.create() for _ in range(64)]
    policy = AuthPolicy(rate_limit=1_000_000, timestamp_window_s=3600, ip_rate_limit=0, nonce_capacity=100_000_000)
    authenticator = RequestAuthenticator(redis=redis, audience=AUDIENCE, chain_id=CHAIN_ID, policy=policy)
    headers = [
        sign_request(
            accounts[i % 64], method="POST", path="/heartbeat", body=BODY, audience=AUDIENCE, chain_id=CHAIN_ID
        )
        for i in range(n)
    ]
    requests = [make_request(h) for h in headers]
    await authenticator(
        make_request(
            sign_request(accounts[0], method="POST", path="/heartbeat", body=BODY, audience=AUDIENCE, chain_id=CHAIN_ID)
        )
    )  # warm the script cache

    # `in_flight` workers, each awaiting its share of the requests one after another: that many
    # requests are always waiting on the dependency, without per-request scheduling in the harness.
    async def worker(share: list[Request]) -> None:
        for request in share:
            await authenticator(request)

    start = time.perf_counter()
    await asyncio.gather(*(worker(requests[i::in_flight]) for i in range(in_flight)))
    elapsed = time.perf_counter() - start
    await redis.aclose()
    return n / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=5000, help="requests per measurement (default 5000)")
    parser.add_argument("--redis-url", help="use this Redis instead of starting a private one")
    args = parser.parse_args()

    raw = raw_recoveries_per_s(args.n)
    with tempfile.TemporaryDirectory() as state_dir, private_redis(args.redis_url, Path(state_dir)) as redis_url:
        serial = asyncio.run(verifications_per_s(redis_url, args.n, in_flight=1))
        concurrent = asyncio.run(verifications_per_s(redis_url, args.n, in_flight=64))

    print(f"raw coincurve recoveries     {raw:10,.0f} /s")
    print(f"verify, 1 in flight          {serial:10,.0f} /s   ratio {serial / raw:.2f}")
    print(f"verify, 64 in flight         {concurrent:10,.0f} /s   ratio {concurrent / raw:.2f}")
    ok = concurrent / raw >= TARGET_RATIO
    record("auth.py", "raw coincurve recoveries", f"{raw:,.0f}/s", "baseline")
    record(
        "auth.py",
        "verify, 64 in flight, against raw",
        f"{concurrent:,.0f}/s, {concurrent / raw:.2f}",
        f"at least {TARGET_RATIO}",
    )
    record("auth.py", "verify, one at a time (a Redis round trip each), against raw", f"{serial / raw:.2f}")
    print(f"target: verify (64 in flight) >= {TARGET_RATIO:.0%} of raw: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


@contextmanager
def private_redis(url: str | None, state_dir: Path) -> Iterator[str]:
    """The given Redis, or a throw-away one started as the devnet starts it."""
    if url:
        yield url
        return
    devnet = Devnet(DevnetSettings(state_dir=state_dir, redis_port=free_port()))
    process = devnet.start_redis()
    try:
        yield process.url
    finally:
        stop(process)


if __name__ == "__main__":
    sys.exit(main())
