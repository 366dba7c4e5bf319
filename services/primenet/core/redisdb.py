"""Redis connections for the services (asyncio, decoded strings)."""

from __future__ import annotations

from redis.asyncio import Redis


def connect(url: str, *, socket_timeout: float | None = 5.0) -> Redis:
    """A pooled client; connections open on first use, so this is safe to call before the loop runs.

    `socket_timeout` bounds every reply; a client for blocking commands (XREAD BLOCK) needs None or a value
    above the longest block it issues.
    """
    client: Redis = Redis.from_url(url, decode_responses=True, health_check_interval=30, socket_timeout=socket_timeout)
    return client
