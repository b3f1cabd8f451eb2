"""The `events` model: one team's events whose ingestion time (`inserted_at`) falls in the interval."""

import uuid
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
      AND ($4::timestamptz IS NULL OR (inserted_at, uuid) > ($4, $5))
    ORDER BY inserted_at, uuid
    LIMIT $6
"""


class EventsSource:
    columns = COLUMNS

    def __init__(self, pool: asyncpg.Pool, batch_size: int = 5_000) -> None:
        self.pool = pool
        self.batch_size = batch_size

    async def read(
        self, team_id: int, start: datetime, end: datetime, *, after: str | None = None, limit: int = 0
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """The interval's events in `(inserted_at, uuid)` order, after the `after` position, at most `limit`."""
        after_at, after_uuid = _parse_position(after) if after else (None, None)
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            cursor = await conn.cursor(_QUERY, team_id, start, end, after_at, after_uuid, limit or None)
            while rows := await cursor.fetch(self.batch_size):
                yield [dict(row) for row in rows]

    async def count(self, team_id: int, start: datetime, end: datetime) -> int:
        return await self.pool.fetchval(  # type: ignore[no-any-return]
            "SELECT count(*) FROM events WHERE team_id = $1 AND inserted_at >= $2 AND inserted_at < $3",
            team_id,
            start,
            end,
        )

    @staticmethod
    def position(row: dict[str, Any]) -> str:
        """Where a read that resumes after `row` starts (the run's `cursor`)."""
        return f"{row['_inserted_at'].isoformat()}|{row['uuid']}"


def _parse_position(position: str) -> tuple[datetime, uuid.UUID]:
    inserted_at, _, row_uuid = position.partition("|")
    return datetime.fromisoformat(inserted_at), uuid.UUID(row_uuid)
