"""The `events` model from PostHog's ClickHouse `events` table, read as PostHog's batch exports read it.

- The interval bounds `COALESCE(inserted_at, _timestamp)`, PostHog's ingestion time, for scheduled runs and
  backfills alike: a backfill followed by the schedule never exports an event twice. Unlike PostHog's query
  there is no window on `timestamp` around the interval: an event that arrives long after it happened is
  exported too (PostHog's `minmax_inserted_at` index keeps the read narrow).
- Copies of an event the table has not merged yet are exported once (`DISTINCT ON` the sort key's columns).
- `person_id` is the event's person after PostHog's overrides (`person_distinct_id_overrides`): an event
  ingested before its distinct id was merged carries the person it was merged into.
- The columns and their order are the PostgreSQL source's, per destination layout, with the same types:
  a destination cannot tell the two sources apart.
"""

import asyncio
import uuid
from datetime import UTC, datetime

from connectors.sources.buckets import EARLIEST, Buckets, Count
from connectors.sources.clickhouse import querying
from connectors.sources.clickhouse.compiling import ClickHouseSQL
from connectors.sources.clickhouse.http import ClickHouse, ClickHouseError, Params
from connectors.sources.events import COLUMNS, POSTGRES_COLUMNS, EventSelection
from connectors.sources.reading import AS_READ, BatchSize, RecordStream

_AT = "COALESCE(inserted_at, toDateTime64(_timestamp, 6, 'UTC'))"
_SELECTS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "files": (
        """uuid, timestamp, _inserted_at, created_at, event, properties, distinct_id, elements_chain,
           person_properties, person_id""",
        COLUMNS,
        ("properties", "person_properties"),
    ),
    "postgres": (
        """uuid, event, properties, toJSONString(elements_chain) AS elements,
           nullIf(JSONExtractRaw(properties, '$set'), '') AS set,
           nullIf(JSONExtractRaw(properties, '$set_once'), '') AS set_once, distinct_id, team_id,
           nullIf(JSONExtractString(properties, '$ip'), '') AS ip, '' AS site_url, timestamp""",
        POSTGRES_COLUMNS,
        ("properties", "elements", "set", "set_once"),
    ),
}
"""Per layout: the select list over the deduplicated events, the exported columns, and which are JSON."""


class ClickHouseEventsSource:
    def __init__(self, clickhouse: ClickHouse, team_id: int, selection: EventSelection | None = None) -> None:
        selection = selection or EventSelection()
        self.clickhouse = clickhouse
        self.team_id = team_id
        self.selection = selection

    def _events(self, p: Params, start: datetime, end: datetime) -> str:
        """The team's selected events of `[start, end)`, each once, with the columns every layout selects from."""
        team = p(self.team_id, "Int64")
        names = []
        if self.selection.include_events:
            names.append(f"event IN {p(list(self.selection.include_events), 'Array(String)')}")
        if self.selection.exclude_events:
            names.append(f"event NOT IN {p(list(self.selection.exclude_events), 'Array(String)')}")
        events = f"""
            SELECT DISTINCT ON (team_id, event, cityHash64(distinct_id), cityHash64(uuid))
                toString(uuid) AS uuid, timestamp, {_AT} AS _inserted_at, created_at, event,
                nullIf(properties, '') AS properties, distinct_id, elements_chain,
                nullIf(person_properties, '') AS person_properties,
                toString(if(notEmpty(overrides.distinct_id), overrides.person_id, events.person_id)) AS person_id,
                team_id
            FROM events
            LEFT JOIN (
                SELECT distinct_id, argMax(person_id, version) AS person_id
                FROM person_distinct_id_overrides WHERE team_id = {team}
                GROUP BY distinct_id HAVING argMax(is_deleted, version) = 0
            ) AS overrides ON events.distinct_id = overrides.distinct_id
            PREWHERE {_AT} >= {p(start, querying.TIME)} AND {_AT} < {p(end, querying.TIME)}
            WHERE {" AND ".join([f"team_id = {team}", *names])}"""
        if not self.selection.filters:
            return events
        sql = ClickHouseSQL(p)
        return f"SELECT * FROM ({events}) WHERE {' AND '.join(f.to_dialect(sql) for f in self.selection.filters)}"

    def _select(self, p: Params) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
        """The select list, the names of what is exported, and which of them are JSON."""
        if (query := self.selection.query) is None:
            return _SELECTS[self.selection.layout]
        sql = ClickHouseSQL(p)
        return (
            ", ".join(f"{e.to_dialect(sql)} AS c{i}" for i, e in enumerate(query.expressions)),
            tuple(query.names),
            (),
        )

    def query(self, start: datetime, end: datetime, after: str | None = None, limit: int = 0) -> tuple[str, Params]:
        p = Params()
        select, _, _ = self._select(p)
        events = self._events(p, start, end)
        query = f"SELECT {select}, _inserted_at AS __cursor_at, uuid AS __cursor_uuid FROM ({events})"
        if after:
            at, _, row_uuid = after.partition("|")
            after_at = p(datetime.fromisoformat(at), querying.TIME)
            query += f" WHERE (_inserted_at, uuid) > ({after_at}, {p(str(uuid.UUID(row_uuid)), 'String')})"
        query += " ORDER BY _inserted_at, uuid"
        if limit:
            query += f" LIMIT {p(limit, 'UInt64')}"
        return f"{query} SETTINGS {querying.SETTINGS}", p

    def read(
        self, start: datetime, end: datetime, *, after: str | None = None, limit: int = 0, size: BatchSize = AS_READ
    ) -> RecordStream:
        _, names, json = self._select(Params())
        sql, p = self.query(start, end, after, limit)
        return querying.read(self.clickhouse, sql, p, position=_position, names=names, json=json, size=size)

    async def type_check(self) -> str | None:
        """Why ClickHouse would refuse this selection's query (a function given a string, ...), or None: the
        query of an empty interval, which ClickHouse analyses in full and reads nothing for."""
        now = datetime.now(UTC)
        sql, p = await asyncio.to_thread(self.query, now, now, None, 1)  # compiling may parse: not on the loop
        return await _refusal(self.clickhouse, sql, p)

    async def regex_problem(self, pattern: str) -> str | None:
        """Why ClickHouse, which runs the filters, would refuse `pattern` as a regular expression (RE2), or None."""
        p = Params()
        return await _refusal(self.clickhouse, f"SELECT match('', {p(pattern, 'String')}) AS m", p)

    async def count(self, start: datetime, end: datetime) -> int:
        p = Params()
        rows = await querying.rows(self.clickhouse, f"SELECT count() AS n FROM ({self._events(p, start, end)})", p)
        return int(rows[0]["n"])

    async def counts(self, start: datetime, end: datetime, buckets: Buckets) -> list[Count]:
        p = Params()
        events = self._events(p, start, end)
        bucket = buckets.clickhouse_sql(p, "_inserted_at")
        rows = await querying.rows(
            self.clickhouse, f"SELECT {bucket} AS bucket, count() AS n FROM ({events}) GROUP BY bucket", p
        )
        return [Count(querying.bucket(row["bucket"]), int(row["n"])) for row in rows if int(row["n"])]

    async def first_at(self, before: datetime) -> datetime | None:
        p = Params()
        events = self._events(p, EARLIEST, before)
        rows = await querying.rows(self.clickhouse, f"SELECT min(_inserted_at) AS at, count() AS n FROM ({events})", p)
        return querying.bucket(rows[0]["at"]) if int(rows[0]["n"]) else None  # type: ignore[return-value]


async def _refusal(clickhouse: ClickHouse, sql: str, p: Params) -> str | None:
    try:
        await asyncio.to_thread(clickhouse.rows, sql, p.values)
    except ClickHouseError as error:
        return str(error).split(": In scope")[0].split("DB::Exception: ")[-1].strip()
    return None


def _position(row: dict[str, object]) -> str:
    at, row_uuid = row["__cursor_at"], row["__cursor_uuid"]
    assert isinstance(at, datetime)
    return f"{at.isoformat()}|{row_uuid}"
