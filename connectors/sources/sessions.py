"""The `sessions` model: one row per `$session_id` with events ingested in the interval.

A session is summarised over all its events (not only this interval's), so a later interval that
touches it again exports its updated summary.
"""

from datetime import datetime

from connectors.sources.buckets import EARLIEST, Buckets, Count
from connectors.sources.reading import AS_READ, BatchSize, Params, RecordStream, SourceDatabase, stream

COLUMNS = (
    "session_id",
    "distinct_id",
    "start_timestamp",
    "end_timestamp",
    "duration_seconds",
    "entry_url",
    "exit_url",
    "pageview_count",
    "event_count",
    "_inserted_at",
)

_SUMMARY = """
    e.properties ->> '$session_id' AS session_id,
    (array_agg(e.distinct_id ORDER BY e.timestamp))[1] AS distinct_id,
    min(e.timestamp) AS start_timestamp,
    max(e.timestamp) AS end_timestamp,
    extract(epoch FROM max(e.timestamp) - min(e.timestamp))::float8 AS duration_seconds,
    (array_agg(e.properties ->> '$current_url' ORDER BY e.timestamp)
        FILTER (WHERE e.properties ? '$current_url'))[1] AS entry_url,
    (array_agg(e.properties ->> '$current_url' ORDER BY e.timestamp DESC)
        FILTER (WHERE e.properties ? '$current_url'))[1] AS exit_url,
    count(*) FILTER (WHERE e.event = '$pageview') AS pageview_count,
    count(*) AS event_count,
    max(e.inserted_at) AS _inserted_at
"""


class SessionsSource:
    columns = COLUMNS

    def __init__(self, db: SourceDatabase, team_id: int) -> None:
        self.db = db
        self.team_id = team_id

    def _touched(self, p: Params, start: datetime, end: datetime, after: str | None) -> str:
        team = p(self.team_id)
        query = f"""
            SELECT DISTINCT properties ->> '$session_id' AS session_id FROM events
            WHERE team_id = {team} AND inserted_at >= {p(start)} AND inserted_at < {p(end)}
              AND properties ? '$session_id'
        """
        if after:
            query += f" AND properties ->> '$session_id' > {p(after)}"
        return query

    def read(
        self, start: datetime, end: datetime, *, after: str | None = None, limit: int = 0, size: BatchSize = AS_READ
    ) -> RecordStream:
        p = Params()
        touched = self._touched(p, start, end, after)
        query = f"""
            WITH touched AS ({touched}{f" ORDER BY session_id LIMIT {p(limit)}" if limit else ""})
            SELECT {_SUMMARY}
            FROM events e JOIN touched t ON e.properties ->> '$session_id' = t.session_id
            WHERE e.team_id = {p(self.team_id)} AND e.properties ? '$session_id'
            GROUP BY 1 ORDER BY 1
        """
        return stream(
            self.db,
            query,
            p.values,
            position=lambda row: str(row["session_id"]),
            size=size,
        )

    async def count(self, start: datetime, end: datetime) -> int:
        p = Params()
        return await self.db.pool.fetchval(f"SELECT count(*) FROM ({self._touched(p, start, end, None)}) s", *p.values)  # type: ignore[no-any-return]

    async def counts(self, start: datetime, end: datetime, buckets: Buckets) -> list[Count]:
        """Sessions with events ingested in `[start, end)`, per bucket (a session touched in two counts in each)."""
        p = Params()
        bucket = buckets.sql(p, "inserted_at")
        rows = await self.db.pool.fetch(
            f"""
            SELECT {bucket} AS bucket, count(DISTINCT properties ->> '$session_id') AS n FROM events
            WHERE team_id = {p(self.team_id)} AND inserted_at >= {p(start)} AND inserted_at < {p(end)}
              AND properties ? '$session_id'
            GROUP BY 1
            """,
            *p.values,
        )
        return [Count(row["bucket"], row["n"]) for row in rows]

    async def first_at(self, before: datetime) -> datetime | None:
        """When the first event of a session before `before` was ingested (None when there is none)."""
        return await self.db.pool.fetchval(  # type: ignore[no-any-return]
            "SELECT min(inserted_at) FROM events WHERE team_id = $1 AND inserted_at >= $2 AND inserted_at < $3 "
            "AND properties ? '$session_id'",
            self.team_id,
            EARLIEST,
            before,
        )
