"""The `events` model: one team's events whose ingestion time (`inserted_at`) falls in the interval."""

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import asyncpg

COLUMNS = (
    "uuid",
    "event",
    "properties",
    "distinct_id",
    "person_id",
    "person_properties",
    "timestamp",
    "created_at",
    "elements_chain",
    "_inserted_at",
)

_QUERY = """
    SELECT uuid, event, properties, distinct_id, person_id, person_properties, timestamp, created_at,
           elements_chain, inserted_at AS _inserted_at
    FROM events
    WHERE team_id = $1 AND inserted_at >= $2 AND inserted_at < $3
    ORDER BY inserted_at, uuid
"""


class EventsSource:
    columns = COLUMNS

    def __init__(self, pool: asyncpg.Pool, batch_size: int = 5_000) -> None:
        self.pool = pool
        self.batch_size = batch_size

    async def read(self, team_id: int, start: datetime, end: datetime) -> AsyncIterator[list[dict[str, Any]]]:
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            cursor = await conn.cursor(_QUERY, team_id, start, end)
            while rows := await cursor.fetch(self.batch_size):
                yield [dict(row) for row in rows]
