"""Redis connections for the services (asyncio, decoded strings)."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis

MAX_CONNECTIONS = 256
POOL_WAIT_S = 10.0


def connect(url: str, *, socket_timeout: float | None = 5.0, max_connections: int = MAX_CONNECTIONS) -> Redis:
    """A pooled client; connections open on first use, so this is safe to call before the loop runs.

    Under load, a request waits (up to POOL_WAIT_S) for a free connection instead of failing: redis-py's default
    pool raises as soon as its cap is reached, which turned bursts into 503s. `socket_timeout` bounds every
    reply; a client for blocking commands (XREAD BLOCK) needs None or a value above the longest block it issues.
    """
    pool = BlockingConnectionPool.from_url(
        url,
        decode_responses=True,
        health_check_interval=30,
        socket_timeout=socket_timeout,
        max_connections=max_connections,
        timeout=POOL_WAIT_S,
    )
    client: Redis = Redis.from_pool(pool)  # the client owns the pool: aclose() closes its connections
    return client
