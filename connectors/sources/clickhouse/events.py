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

import uuid
from datetime import datetime

from connectors.sources.buckets import EARLIEST, Buckets, Count
from connectors.sources.clickhouse import querying
from connectors.sources.clickhouse.http import ClickHouse, Params
from connectors.sources.events import COLUMNS, POSTGRES_COLUMNS, EventSelection
from connectors.sources.reading import AS_READ, BatchSize, RecordStream

_AT = "COALESCE(inserted_at, toDateTime64(_timestamp, 6, 'UTC'))"
_SELECTS = {
    "files": (
        COLUMNS,
        """uuid, timestamp, _inserted_at, created_at, event, properties, distinct_id, elements_chain,
           person_properties, person_id""",
        ("properties", "person_properties"),
    ),
    "postgres": (
        POSTGRES_COLUMNS,
        """uuid, event, properties, toJSONString(elements_chain) AS elements,
           nullIf(JSONExtractRaw(properties, '$set'), '') AS set,
           nullIf(JSONExtractRaw(properties, '$set_once'), '') AS set_once, distinct_id, team_id,
           nullIf(JSONExtractString(properties, '$ip'), '') AS ip, '' AS site_url, timestamp""",
        ("properties", "elements", "set", "set_once"),
    ),
}
"""Per layout: the exported columns, their select list over the deduplicated events, and which are JSON."""


class ClickHouseEventsSource:
    def __init__(self, clickhouse: ClickHouse, team_id: int, selection: EventSelection | None = None) -> None:
        selection = selection or EventSelection()
        if selection.filters or selection.query is not None:
            raise ValueError("property filters and hogql_query are not read from ClickHouse yet")
        self.clickhouse = clickhouse
        self.team_id = team_id
        self.selection = selection

    def _events(self, p: Params, start: datetime, end: datetime) -> str:
        """The team's events of `[start, end)`, each once, with the columns every layout selects from."""
        team = p(self.team_id, "Int64")
        names = []
        if self.selection.include_events:
            names.append(f"event IN {p(list(self.selection.include_events), 'Array(String)')}")
        if self.selection.exclude_events:
            names.append(f"event NOT IN {p(list(self.selection.exclude_events), 'Array(String)')}")
        return f"""
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

    def query(self, start: datetime, end: datetime, after: str | None = None, limit: int = 0) -> tuple[str, Params]:
        p = Params()
        _, select, _ = _SELECTS[self.selection.layout]
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
        names, _, json = _SELECTS[self.selection.layout]
        sql, p = self.query(start, end, after, limit)
        return querying.read(self.clickhouse, sql, p, position=_position, names=names, json=json, size=size)

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


def _position(row: dict[str, object]) -> str:
    at, row_uuid = row["__cursor_at"], row["__cursor_uuid"]
    assert isinstance(at, datetime)
    return f"{at.isoformat()}|{row_uuid}"
