"""Small helpers the end-to-end tests share."""

import asyncio
import subprocess
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from batch_exports.embedded import temporal_cli

T = TypeVar("T")


async def eventually(probe: Callable[[], Awaitable[T | None]], within: float = 30, every: float = 0.2) -> T:
    """Poll `probe` until it returns something truthy; fail after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = await probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s (last: {result!r})")
        await asyncio.sleep(every)


def temporal_cli_run(*args: str, address: str) -> str:
    """Run the `temporal` CLI as an operator would, against the test server."""
    completed = subprocess.run(
        [temporal_cli(), *args, "--address", address], capture_output=True, text=True, check=False, timeout=60
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def event(name: str, distinct_id: str, **properties: Any) -> dict[str, Any]:
    return {"event": name, "distinct_id": distinct_id, "properties": properties}
