"""The `persons` model: each distinct id whose person (or whose link to it) changed in the interval.

One row per distinct id, with its current person's latest properties and versions. A person merged away in
the interval (capture keeps it, deleted) is exported once more, as deleted: under the distinct id whose merge
deleted it, with that link's version before it moved (lower than the row of its current person, which a
consumer keeps), the person's version plus 100 and `is_deleted` true.
"""

from datetime import datetime

from connectors.sources.buckets import EARLIEST, Buckets, Count
from connectors.sources.reading import AS_READ, BatchSize, Params, RecordStream, SourceDatabase, stream

COLUMNS = (
    "team_id",
    "distinct_id",
    "person_id",
    "properties",
    "person_version",
    "person_distinct_id_version",
    "created_at",
    "is_deleted",
    "_inserted_at",
)


def _within(column: str, lower: str, upper: str) -> str:
    return f"({column} >= {lower} AND {column} < {upper})"


_FIRST = "least(p.updated_at, d.updated_at)"
_DELETED = "~deleted"
"""The suffix of the changed-at part of a position taken at a deleted person's row."""


class PersonsSource:
    columns = COLUMNS

    def __init__(self, db: SourceDatabase, team_id: int) -> None:
        self.db = db
        self.team_id = team_id

    def _query(
        self, start: datetime, end: datetime, after: str | None, limit: int, select: str, p: Params | None = None,
        *, rows: bool = True,
    ) -> tuple[str, list]:  # fmt: skip
        """The query of `select` over the interval's changed distinct ids: in order (`rows`), or to aggregate."""
        p = p or Params()
        team, lower, upper = p(self.team_id), p(start), p(end)
        person, link = _within("p.updated_at", lower, upper), _within("d.updated_at", lower, upper)
        # PostHog's `_inserted_at`: the change in the interval, the person's or the link's; when both, the earlier
        changed = f"CASE WHEN NOT {link} THEN p.updated_at WHEN NOT {person} THEN d.updated_at ELSE {_FIRST} END"
        query = f"""
            SELECT {select}
            FROM (
                SELECT d.team_id, d.distinct_id, p.id AS person_id, p.properties, p.version AS person_version,
                       d.version AS person_distinct_id_version, p.created_at, p.is_deleted,
                       {changed} AS changed_at,
                       {_FIRST} AS first_changed_at
                FROM person_distinct_ids d JOIN persons p ON p.id = d.person_id
                WHERE d.team_id = {team}
                  AND ({person} OR {link})
                UNION ALL
                SELECT p.team_id, p.deleted_distinct_id, p.id, p.properties, p.version, p.deleted_distinct_id_version,
                       p.created_at, true, p.updated_at, p.updated_at
                FROM persons p
                WHERE p.team_id = {team} AND p.updated_at >= {lower} AND p.updated_at < {upper}
                  AND p.is_deleted AND p.deleted_distinct_id IS NOT NULL
            ) r
        """
        if after:
            changed_at, _, distinct_id = after.partition("|")
            deleted = changed_at.endswith(_DELETED)
            changed_at = changed_at.removesuffix(_DELETED)
            query += (
                f" WHERE (r.changed_at, r.distinct_id, r.is_deleted) > "
                f"({p(datetime.fromisoformat(changed_at))}, {p(distinct_id)}, {p(deleted)})"
            )
        if rows:
            query += " ORDER BY r.changed_at, r.distinct_id, r.is_deleted" + (f" LIMIT {p(limit)}" if limit else "")
        return query, p.values

    def read(
        self, start: datetime, end: datetime, *, after: str | None = None, limit: int = 0, size: BatchSize = AS_READ
    ) -> RecordStream:
        select = """r.team_id, r.distinct_id, r.person_id, r.properties::text AS properties, r.person_version,
                    r.person_distinct_id_version, r.created_at, r.is_deleted, r.changed_at AS _inserted_at"""
        query, args = self._query(start, end, after, limit, select)
        return stream(
            self.db,
            query,
            args,
            position=_position,
            json=("properties",),
            size=size,
        )

    async def count(self, start: datetime, end: datetime) -> int:
        query, args = self._query(start, end, None, 0, "count(*)", rows=False)
        return await self.db.pool.fetchval(query, *args)  # type: ignore[no-any-return]

    async def counts(self, start: datetime, end: datetime, buckets: Buckets) -> list[Count]:
        """Changed distinct ids of `[start, end)` per bucket of their latest change."""
        p = Params()
        bucket = buckets.sql(p, "r.changed_at")
        query, args = self._query(start, end, None, 0, f"{bucket} AS bucket, count(*) AS n", p, rows=False)
        rows = await self.db.pool.fetch(f"{query} GROUP BY 1", *args)
        return [Count(row["bucket"], row["n"]) for row in rows]

    async def first_at(self, before: datetime) -> datetime | None:
        """The first change of a person or of a distinct id's link before `before` (None when there is none)."""
        query, args = self._query(EARLIEST, before, None, 0, "min(r.first_changed_at)", rows=False)
        return await self.db.pool.fetchval(query, *args)  # type: ignore[no-any-return]


def _position(row: dict[str, object]) -> str:
    changed_at = row["_inserted_at"]
    assert isinstance(changed_at, datetime)
    return f"{changed_at.isoformat()}{_DELETED if row['is_deleted'] else ''}|{row['distinct_id']}"
