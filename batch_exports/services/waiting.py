"""Waiting, bounded, for something a request started to be done (a cancelled run to stop, say)."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")
POLL_SECONDS = 0.2


async def wait_for(probe: Callable[[], Awaitable[T | None]], within: float) -> T | None:
    """The first truthy answer of `probe` within `within` seconds, or None."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        if found := await probe():
            return found
        if asyncio.get_running_loop().time() >= deadline:
            return None
        await asyncio.sleep(POLL_SECONDS)
