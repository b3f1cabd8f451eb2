"""The `persons` model from PostHog's ClickHouse tables (`person`, `person_distinct_id2`), read as PostHog's
persons export reads them.

A row per distinct id whose person or link changed in the interval (by `_timestamp`, the time ClickHouse
ingested the version): the link's latest version and the person's latest version, whichever of the two
changed in the interval naming the row's `_inserted_at`. The columns and types are the PostgreSQL source's.
"""

from datetime import datetime

from connectors.sources.buckets import EARLIEST, Buckets, Count
from connectors.sources.clickhouse import querying
from connectors.sources.clickhouse.http import ClickHouse, Params
from connectors.sources.persons import COLUMNS
from connectors.sources.reading import AS_READ, BatchSize, RecordStream

_SETTINGS = querying.GROUPING_SETTINGS


class ClickHousePersonsSource:
    columns = COLUMNS

    def __init__(self, clickhouse: ClickHouse, team_id: int) -> None:
        self.clickhouse = clickhouse
        self.team_id = team_id

    def _persons(self, p: Params, start: datetime, end: datetime) -> str:
        team, lower, upper = p(self.team_id, "Int64"), p(start, querying.TIME), p(end, querying.TIME)

        def within(column: str) -> str:
            return f"({column} >= {lower} AND {column} < {upper})"

        return f"""
            WITH new_persons AS (
                SELECT id FROM person
                WHERE team_id = {team}
                  AND id IN (SELECT id FROM person WHERE team_id = {team} AND {within("_timestamp")})
                GROUP BY id HAVING {within("argMax(_timestamp, person.version)")}
            ),
            distinct_ids AS (
                SELECT distinct_id FROM person_distinct_id2
                WHERE team_id = {team} AND distinct_id IN (
                    SELECT distinct_id FROM person_distinct_id2 WHERE team_id = {team} AND {within("_timestamp")})
                GROUP BY distinct_id HAVING {within("argMax(_timestamp, person_distinct_id2.version)")}
                UNION DISTINCT
                SELECT DISTINCT distinct_id FROM person_distinct_id2
                WHERE team_id = {team} AND person_id IN new_persons
            ),
            latest_distinct_ids AS (
                SELECT distinct_id, argMax(person_id, person_distinct_id2.version) AS person_id2,
                       max(version) AS version, argMax(_timestamp, person_distinct_id2.version) AS _timestamp
                FROM person_distinct_id2
                WHERE team_id = {team} AND distinct_id IN distinct_ids
                GROUP BY distinct_id
            ),
            latest_person_versions AS (
                SELECT id, max(version) AS version, max(_timestamp) AS _timestamp
                FROM person
                WHERE team_id = {team} AND id IN (SELECT DISTINCT person_id2 FROM latest_distinct_ids)
                GROUP BY id
            )
            SELECT p.team_id AS team_id, pd.distinct_id AS distinct_id, toString(pd.person_id2) AS person_id,
                   nullIf(p.properties, '') AS properties, toInt64(p.version) AS person_version,
                   pd.version AS person_distinct_id_version, toDateTime64(p.created_at, 6, 'UTC') AS created_at,
                   toBool(p.is_deleted) AS is_deleted,
                   toDateTime64(multiIf(
                       {within("pd._timestamp")} AND NOT {within("p._timestamp")}, pd._timestamp,
                       {within("p._timestamp")} AND NOT {within("pd._timestamp")}, p._timestamp,
                       least(p._timestamp, pd._timestamp)
                   ), 6, 'UTC') AS _inserted_at
            FROM person p INNER JOIN latest_distinct_ids pd ON p.id = pd.person_id2
            WHERE p.team_id = {team} AND (p.id, p.version, p._timestamp) IN latest_person_versions"""

    def query(self, start: datetime, end: datetime, after: str | None = None, limit: int = 0) -> tuple[str, Params]:
        p = Params()
        query = f"SELECT * FROM ({self._persons(p, start, end)})"
        if after:
            changed_at, _, distinct_id = after.partition("|")
            deleted = changed_at.endswith("~deleted")
            at = datetime.fromisoformat(changed_at.removesuffix("~deleted"))
            query += (f" WHERE (_inserted_at, distinct_id, is_deleted) > "
                      f"({p(at, querying.TIME)}, {p(distinct_id, 'String')}, {p(deleted, 'Bool')})")  # fmt: skip
        query += " ORDER BY _inserted_at, distinct_id, is_deleted"
        if limit:
            query += f" LIMIT {p(limit, 'UInt64')}"
        return f"{query} SETTINGS {_SETTINGS}", p

    def read(
        self, start: datetime, end: datetime, *, after: str | None = None, limit: int = 0, size: BatchSize = AS_READ
    ) -> RecordStream:
        sql, p = self.query(start, end, after, limit)
        return querying.read(
            self.clickhouse, sql, p, position=_position, names=COLUMNS, json=("properties",), size=size
        )

    async def count(self, start: datetime, end: datetime) -> int:
        p = Params()
        rows = await querying.rows(
            self.clickhouse, f"SELECT count() AS n FROM ({self._persons(p, start, end)})", p, _SETTINGS
        )
        return int(rows[0]["n"])

    async def counts(self, start: datetime, end: datetime, buckets: Buckets) -> list[Count]:
        p = Params()
        persons = self._persons(p, start, end)
        bucket = buckets.clickhouse_sql(p, "_inserted_at")
        rows = await querying.rows(
            self.clickhouse, f"SELECT {bucket} AS bucket, count() AS n FROM ({persons}) GROUP BY bucket", p, _SETTINGS
        )
        return [Count(querying.bucket(row["bucket"]), int(row["n"])) for row in rows if int(row["n"])]

    async def first_at(self, before: datetime) -> datetime | None:
        p = Params()
        rows = await querying.rows(
            self.clickhouse,
            f"SELECT min(_inserted_at) AS at, count() AS n FROM ({self._persons(p, EARLIEST, before)})",
            p,
            _SETTINGS,
        )
        return querying.bucket(rows[0]["at"]) if int(rows[0]["n"]) else None  # type: ignore[return-value]


def _position(row: dict[str, object]) -> str:
    changed_at = row["_inserted_at"]
    assert isinstance(changed_at, datetime)
    return f"{changed_at.isoformat()}{'~deleted' if row['is_deleted'] else ''}|{row['distinct_id']}"
