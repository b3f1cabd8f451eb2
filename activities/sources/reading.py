"""Streaming a query's rows in bounded batches, from one consistent snapshot."""

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import asyncpg

BATCH_SIZE = 5_000


async def stream(
    pool: asyncpg.Pool,
    query: str,
    args: Sequence[Any],
    *,
    shape: Callable[[asyncpg.Record], dict[str, Any]] = dict,
    batch_size: int = BATCH_SIZE,
) -> AsyncIterator[list[dict[str, Any]]]:
    """Batches of at most `batch_size` rows through a server-side cursor: memory stays flat however many."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        cursor = await conn.cursor(query, *args)
        while rows := await cursor.fetch(batch_size):
            yield [shape(row) for row in rows]


class Params:
    """Bound parameters of a query being built: each value becomes `$n`, never text in the SQL."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def __call__(self, value: Any, cast: str = "") -> str:
        self.values.append(value)
        return f"${len(self.values)}{cast}"
