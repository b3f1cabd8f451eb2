"""The `events` model: one team's events whose ingestion time (`inserted_at`) falls in the interval.

What an export selects narrows it: the destination config's `include_events` / `exclude_events`, the
export's property `filters` (ANDed) and its `hogql_query`, which picks and names the columns.
"""

import asyncio
import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from connectors.sources.buckets import EARLIEST, Buckets, Count, on_count_buckets
from connectors.sources.filters import PropertyFilter
from connectors.sources.hogql import Query
from connectors.sources.reading import AS_READ, BatchSize, Params, RecordStream, SourceDatabase, stream

COLUMNS = (
    "uuid",
    "timestamp",
    "_inserted_at",
    "created_at",
    "event",
    "properties",
    "distinct_id",
    "elements_chain",
    "person_properties",
    "person_id",
)
"""PostHog's event columns for files (S3, Azure Blob, File), in its order; the table and HTTP destinations too."""

POSTGRES_COLUMNS = (
    "uuid",
    "event",
    "properties",
    "elements",
    "set",
    "set_once",
    "distinct_id",
    "team_id",
    "ip",
    "site_url",
    "timestamp",
)
"""PostHog's event columns for PostgreSQL: `elements` is the chain as a JSON string (its `toJSONString`),
`ip` the `$ip` property (null when missing or empty), `site_url` always empty, as PostHog writes them."""

_SELECTS = {
    "files": (
        COLUMNS,
        """uuid, timestamp, inserted_at AS _inserted_at, created_at, event, properties::text AS properties,
           distinct_id, elements_chain, person_properties::text AS person_properties, person_id""",
        ("properties", "person_properties"),
    ),
    "postgres": (
        POSTGRES_COLUMNS,
        """uuid, event, properties::text AS properties, to_jsonb(elements_chain)::text AS elements,
           (properties -> '$set')::text AS set, (properties -> '$set_once')::text AS set_once, distinct_id,
           team_id, nullif(properties ->> '$ip', '') AS ip, ''::text AS site_url, timestamp""",
        ("properties", "elements", "set", "set_once"),
    ),
}
"""Per layout: the exported columns, their select list, and which of them are JSON."""
_CURSOR = "inserted_at AS __cursor_at, uuid AS __cursor_uuid"


@dataclass(frozen=True)
class EventSelection:
    include_events: tuple[str, ...] = ()
    exclude_events: tuple[str, ...] = ()
    filters: tuple[PropertyFilter, ...] = ()
    query: Query | None = None
    layout: str = "files"
    """Which of PostHog's column sets the destination takes (`_SELECTS`), unless `query` picks the columns."""


def _position(row: dict[str, object]) -> str:
    """`{inserted_at}|{uuid}` of a row, from the cursor columns that follow the exported ones."""
    at, row_uuid = row["__cursor_at"], row["__cursor_uuid"]
    assert isinstance(at, datetime)
    return f"{at.isoformat()}|{row_uuid}"


class EventsSource:
    def __init__(self, db: SourceDatabase, team_id: int, selection: EventSelection = EventSelection()) -> None:
        self.db = db
        self.team_id = team_id
        self.selection = selection

    def _where(self, p: Params, start: datetime, end: datetime, after: str | None) -> str:
        where = [f"team_id = {p(self.team_id)}", f"inserted_at >= {p(start)}", f"inserted_at < {p(end)}"]
        where += self._names(p)
        where += [f.to_sql(p) for f in self.selection.filters]
        if after:
            inserted_at, _, row_uuid = after.partition("|")
            where.append(f"(inserted_at, uuid) > ({p(datetime.fromisoformat(inserted_at))}, {p(uuid.UUID(row_uuid))})")
        return " AND ".join(where)

    def _names(self, p: Params) -> list[str]:
        """The conditions on the event's name (`include_events`, `exclude_events`)."""
        where = []
        if self.selection.include_events:
            where.append(f"event = ANY({p(list(self.selection.include_events), '::text[]')})")
        if self.selection.exclude_events:
            where.append(f"NOT (event = ANY({p(list(self.selection.exclude_events), '::text[]')}))")
        return where

    def _select(self, p: Params) -> tuple[str, tuple[str, ...]]:
        """The select list, and the names of what is exported (the cursor columns after them stay behind)."""
        query = self.selection.query
        if query is None:
            names, select, _ = _SELECTS[self.selection.layout]
            return f"{select}, {_CURSOR}", names
        select = ", ".join(f"{e.to_sql(p)} AS c{i}" for i, e in enumerate(query.expressions))
        return f"{select}, {_CURSOR}", tuple(query.names)

    def query(
        self, start: datetime, end: datetime, after: str | None = None, limit: int = 0
    ) -> tuple[str, Params, tuple[str, ...]]:
        """The SQL that reads the interval, its parameters and the names of the exported columns."""
        p = Params()
        select, names = self._select(p)
        query = f"SELECT {select} FROM events WHERE {self._where(p, start, end, after)} ORDER BY inserted_at, uuid"
        if limit:
            query += f" LIMIT {p(limit)}"
        return query, p, names

    def read(
        self, start: datetime, end: datetime, *, after: str | None = None, limit: int = 0, size: BatchSize = AS_READ
    ) -> RecordStream:
        """The interval's events in `(inserted_at, uuid)` order, after the `after` position, at most `limit`."""
        query, p, names = self.query(start, end, after, limit)
        json = _SELECTS[self.selection.layout][2] if self.selection.query is None else ()
        return stream(
            self.db,
            query,
            p.values,
            position=_position,
            names=names,
            json=json,
            size=size,
        )

    async def type_check(self) -> str | None:
        """Why PostgreSQL would refuse this selection's query (a function given text, ...), or None.

        Preparing the query resolves every type without reading a row, so a query that passes here
        does not fail at 3 a.m. for its types.
        """
        now = datetime.now().astimezone()
        query, _, _ = await asyncio.to_thread(self.query, now, now, None, 1)  # compiling may parse: not on the loop
        async with self.db.pool.acquire() as conn:
            try:
                await conn.prepare(query)
            except asyncpg.PostgresError as error:
                return str(error).splitlines()[0]
        return None

    async def regex_problem(self, pattern: str) -> str | None:
        """Why PostgreSQL, which runs the filters, would refuse `pattern` as a regular expression, or None."""
        try:
            async with self.db.pool.acquire() as conn, conn.transaction():
                await conn.execute("SET LOCAL statement_timeout = 2000")
                await conn.fetchval("SELECT '' ~ $1::text", pattern)
        except asyncpg.InvalidRegularExpressionError as error:
            return str(error)
        except asyncpg.QueryCanceledError:
            return "PostgreSQL took too long to compile it"
        return None

    async def count(self, start: datetime, end: datetime) -> int:
        p = Params()
        return await self.db.pool.fetchval(
            f"SELECT count(*) FROM events WHERE {self._where(p, start, end, None)}", *p.values
        )  # type: ignore[no-any-return]

    async def counts(self, start: datetime, end: datetime, buckets: Buckets) -> list[Count]:
        """The selected events of `[start, end)` counted per bucket: from `event_counts` (what capture counted,
        per five minutes and event name) unless property filters need the events themselves."""
        p = Params()
        if self.selection.filters or not (on_count_buckets(start) and on_count_buckets(end)):
            where = self._where(p, start, end, None)
            query = f"SELECT {buckets.sql(p, 'inserted_at')} AS bucket, count(*) AS n FROM events WHERE {where}"
        else:
            counted = [f"team_id = {p(self.team_id)}", f"bucket >= {p(start)}", f"bucket < {p(end)}", *self._names(p)]
            query = f"SELECT {buckets.sql(p, 'bucket')} AS bucket, sum(n)::bigint AS n FROM event_counts WHERE "
            query += " AND ".join(counted)
        rows = await self.db.pool.fetch(f"{query} GROUP BY 1", *p.values)
        return [Count(row["bucket"], row["n"]) for row in rows if row["n"]]

    async def first_at(self, before: datetime) -> datetime | None:
        """When the first selected event before `before` was ingested (None when there is none)."""
        p = Params()
        where = self._where(p, EARLIEST, before, None)
        return await self.db.pool.fetchval(f"SELECT min(inserted_at) FROM events WHERE {where}", *p.values)  # type: ignore[no-any-return]
