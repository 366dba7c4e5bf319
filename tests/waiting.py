"""Polling for something a real service does in its own time (a heartbeat, a chain event, a loop's round)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def until(
    read: Callable[[], Awaitable[T | None]], what: str, timeout_s: float = 30.0, every_s: float = 0.02
) -> T:
    """The first value `read` returns other than None; AssertionError naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = await read()
        if found is not None:
            return found
        await asyncio.sleep(every_s)
    raise AssertionError(f"timed out waiting for {what}")


async def wait_for(
    check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 60.0, every_s: float = 0.1
) -> None:
    """Return once `check` is true; AssertionError naming `what` after `timeout_s`."""

    async def passed() -> bool | None:
        return True if await check() else None

    await until(passed, what, timeout_s, every_s)
