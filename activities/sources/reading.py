"""Streaming a query's rows in bounded batches, from one consistent snapshot."""

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from batch_exports.sql import Params

BATCH_SIZE = 5_000
Shape = Callable[[asyncpg.Record], dict[str, Any]]


@dataclass(frozen=True)
class RecordBatch:
    rows: list[dict[str, Any]]
    position: str
    """Where a read that resumes after this batch starts (a run's `cursor`)."""


async def stream(
    pool: asyncpg.Pool,
    query: str,
    args: Sequence[Any],
    *,
    position: Callable[[asyncpg.Record], str],
    shape: Shape = dict,
    batch_size: int = BATCH_SIZE,
) -> AsyncIterator[RecordBatch]:
    """Batches of at most `batch_size` rows through a server-side cursor: memory stays flat however many."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        cursor = await conn.cursor(query, *args)
        while records := await cursor.fetch(batch_size):
            yield RecordBatch([shape(record) for record in records], position(records[-1]))


__all__ = ["BATCH_SIZE", "Params", "RecordBatch", "Shape", "stream"]
