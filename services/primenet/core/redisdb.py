"""Redis connections for the services (asyncio, decoded strings)."""

from __future__ import annotations

from redis.asyncio import Redis


def connect(url: str) -> Redis:
    """A pooled client; connections open on first use, so this is safe to call before the loop runs."""
    client: Redis = Redis.from_url(url, decode_responses=True, health_check_interval=30)
    return client
