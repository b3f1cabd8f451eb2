"""The `events` model: one team's events whose ingestion time (`inserted_at`) falls in the interval.

What an export selects narrows it: the destination config's `include_events` / `exclude_events`, the
export's property `filters` (ANDed) and its `hogql_query`, which picks and names the columns.
"""

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from activities.sources.reading import Params, RecordBatch, Shape, stream
from batch_exports.filters import PropertyFilter
from batch_exports.hogql import Query

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

_DEFAULT_SELECT = """uuid, event, properties, distinct_id, person_id, person_properties, timestamp, created_at,
                     elements_chain, inserted_at AS _inserted_at"""
_CURSOR = "inserted_at AS __cursor_at, uuid AS __cursor_uuid"


@dataclass(frozen=True)
class EventSelection:
    include_events: tuple[str, ...] = ()
    exclude_events: tuple[str, ...] = ()
    filters: tuple[PropertyFilter, ...] = ()
    query: Query | None = None


def _position(row: asyncpg.Record) -> str:
    return f"{row['__cursor_at'].isoformat()}|{row['__cursor_uuid']}"


class EventsSource:
    def __init__(self, pool: asyncpg.Pool, team_id: int, selection: EventSelection = EventSelection()) -> None:
        self.pool = pool
        self.team_id = team_id
        self.selection = selection

    def _where(self, p: Params, start: datetime, end: datetime, after: str | None) -> str:
        where = [f"team_id = {p(self.team_id)}", f"inserted_at >= {p(start)}", f"inserted_at < {p(end)}"]
        if self.selection.include_events:
            where.append(f"event = ANY({p(list(self.selection.include_events), '::text[]')})")
        if self.selection.exclude_events:
            where.append(f"NOT (event = ANY({p(list(self.selection.exclude_events), '::text[]')}))")
        where += [f.to_sql(p) for f in self.selection.filters]
        if after:
            inserted_at, _, row_uuid = after.partition("|")
            where.append(f"(inserted_at, uuid) > ({p(datetime.fromisoformat(inserted_at))}, {p(uuid.UUID(row_uuid))})")
        return " AND ".join(where)

    def _select(self, p: Params) -> tuple[str, Shape]:
        """The select list, and how a row becomes what is exported (the cursor columns stay behind)."""
        query = self.selection.query
        columns: tuple[str, ...]
        if query is None:
            columns = COLUMNS
            select = _DEFAULT_SELECT
        else:
            columns = tuple(query.names)
            select = ", ".join(f"{e.to_sql(p)} AS c{i}" for i, e in enumerate(query.expressions))

        def shape(row: asyncpg.Record) -> dict[str, object]:
            return dict(zip(columns, row.values(), strict=False))  # zip stops before the cursor columns

        return f"{select}, {_CURSOR}", shape

    def _query(self, start: datetime, end: datetime, after: str | None, limit: int) -> tuple[str, Params, Shape]:
        p = Params()
        select, shape = self._select(p)
        query = f"SELECT {select} FROM events WHERE {self._where(p, start, end, after)} ORDER BY inserted_at, uuid"
        if limit:
            query += f" LIMIT {p(limit)}"
        return query, p, shape

    def read(
        self, start: datetime, end: datetime, *, after: str | None = None, limit: int = 0
    ) -> AsyncIterator[RecordBatch]:
        """The interval's events in `(inserted_at, uuid)` order, after the `after` position, at most `limit`."""
        query, p, shape = self._query(start, end, after, limit)
        return stream(self.pool, query, p.values, position=_position, shape=shape)

    async def type_check(self) -> str | None:
        """Why PostgreSQL would refuse this selection's query (a function given text, ...), or None.

        Preparing the query resolves every type without reading a row, so a query that passes here
        does not fail at 3 a.m. for its types.
        """
        now = datetime.now().astimezone()
        query, _, _ = self._query(now, now, None, 1)
        async with self.pool.acquire() as conn:
            try:
                await conn.prepare(query)
            except asyncpg.PostgresError as error:
                return str(error).splitlines()[0]
        return None

    async def count(self, start: datetime, end: datetime) -> int:
        p = Params()
        return await self.pool.fetchval(
            f"SELECT count(*) FROM events WHERE {self._where(p, start, end, None)}", *p.values
        )  # type: ignore[no-any-return]
