"""The `events` model: one team's events whose ingestion time (`inserted_at`) falls in the interval.

The destination config's `include_events` / `exclude_events` narrow it by event name.
"""

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from activities.sources.reading import Params, stream

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

_SELECT = """uuid, event, properties, distinct_id, person_id, person_properties, timestamp, created_at,
             elements_chain, inserted_at AS _inserted_at"""


@dataclass(frozen=True)
class EventSelection:
    include_events: tuple[str, ...] = ()
    exclude_events: tuple[str, ...] = ()


class EventsSource:
    columns = COLUMNS

    def __init__(self, pool: asyncpg.Pool, team_id: int, selection: EventSelection = EventSelection()) -> None:
        self.pool = pool
        self.team_id = team_id
        self.selection = selection

    def _where(self, p: Params, start: datetime, end: datetime, after: str | None) -> str:
        where = [f"team_id = {p(self.team_id)}", f"inserted_at >= {p(start)}", f"inserted_at < {p(end)}"]
        if self.selection.include_events:
            where.append(f"event = ANY({p(list(self.selection.include_events))}::text[])")
        if self.selection.exclude_events:
            where.append(f"NOT (event = ANY({p(list(self.selection.exclude_events))}::text[]))")
        if after:
            inserted_at, _, row_uuid = after.partition("|")
            where.append(f"(inserted_at, uuid) > ({p(datetime.fromisoformat(inserted_at))}, {p(uuid.UUID(row_uuid))})")
        return " AND ".join(where)

    def read(
        self, start: datetime, end: datetime, *, after: str | None = None, limit: int = 0
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """The interval's events in `(inserted_at, uuid)` order, after the `after` position, at most `limit`."""
        p = Params()
        query = f"SELECT {_SELECT} FROM events WHERE {self._where(p, start, end, after)} ORDER BY inserted_at, uuid"
        if limit:
            query += f" LIMIT {p(limit)}"
        return stream(self.pool, query, p.values)

    @staticmethod
    def position(row: dict[str, Any]) -> str:
        """Where a read that resumes after `row` starts (the run's `cursor`)."""
        return f"{row['_inserted_at'].isoformat()}|{row['uuid']}"

    async def count(self, start: datetime, end: datetime) -> int:
        p = Params()
        return await self.pool.fetchval(
            f"SELECT count(*) FROM events WHERE {self._where(p, start, end, None)}", *p.values
        )  # type: ignore[no-any-return]
