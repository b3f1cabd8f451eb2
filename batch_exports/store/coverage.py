"""What an export owes: the spans a pause gave up (`batch_export_forgone_spans`), and the intervals it owes that
have no completed run (the missing-intervals gauge).

An export owes every interval ending after its `owed_from` (its creation, or its last change of interval) a
completed run, except those of a span given up by an unpause without backfill, and, while it is paused, those
after the pause began. A run under way is not missing (the lag shows a slow one).
"""

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TypeAlias

import asyncpg

from batch_exports.runs.statuses import COUNTED_AS_RUN
from contracts.intervals import IntervalSpec, boundaries

Executor: TypeAlias = asyncpg.Pool | asyncpg.Connection


@dataclass(frozen=True)
class ForgoneSpan:
    """Intervals ending in `(after, through]` were given up: not exported, not counted missing."""

    after: datetime
    through: datetime
    reason: str


async def forgo(conn: Executor, batch_export_id: uuid.UUID, after: datetime, through: datetime, reason: str) -> None:
    """Record intervals ending in `(after, through]` as given up; a span of the same cause ending at `after` grows."""
    if through <= after:
        return
    grown = await conn.execute(
        "UPDATE batch_export_forgone_spans SET through = $3 "
        "WHERE batch_export_id = $1 AND through = $2 AND reason = $4",
        batch_export_id,
        after,
        through,
        reason,
    )
    if grown.endswith(" 0"):
        await conn.execute(
            "INSERT INTO batch_export_forgone_spans (batch_export_id, after, through, reason) VALUES ($1, $2, $3, $4)",
            batch_export_id,
            after,
            through,
            reason,
        )


async def take_back_latest(conn: Executor, batch_export_id: uuid.UUID) -> ForgoneSpan | None:
    """Remove the latest span given up (its intervals are owed again, a backfill runs them) and return it."""
    row = await conn.fetchrow(
        """
        DELETE FROM batch_export_forgone_spans WHERE id = (
            SELECT id FROM batch_export_forgone_spans WHERE batch_export_id = $1 ORDER BY through DESC, id DESC LIMIT 1
        ) RETURNING after, through, reason
        """,
        batch_export_id,
    )
    return ForgoneSpan(**dict(row)) if row else None


async def latest_given_up(conn: Executor, batch_export_id: uuid.UUID) -> ForgoneSpan | None:
    """The latest span given up, left in place (what `take_back_latest` would take)."""
    row = await conn.fetchrow(
        """
        SELECT after, through, reason FROM batch_export_forgone_spans
        WHERE batch_export_id = $1 ORDER BY through DESC, id DESC LIMIT 1
        """,
        batch_export_id,
    )
    return ForgoneSpan(**dict(row)) if row else None


MISSING = """
    SELECT count(*) FROM {ends} AS owed (e)
    WHERE NOT EXISTS (
        SELECT 1 FROM batch_export_runs r
        WHERE r.batch_export_id = $1 AND r.data_interval_end = owed.e AND r.status = ANY($2)
    ) AND NOT EXISTS (
        SELECT 1 FROM batch_export_forgone_spans f
        WHERE f.batch_export_id = $1 AND owed.e > f.after AND owed.e <= f.through
    )
"""


async def missing_intervals(
    conn: Executor, batch_export_id: uuid.UUID, spec: IntervalSpec, after: datetime, through: datetime
) -> int:
    """How many intervals ending in `(after, through]` have no completed run (nor one under way) and were not
    given up. Sub-day intervals are counted in SQL (a year of 5-minute intervals is 105,000 of them)."""
    if through <= after:
        return 0
    if not spec.interval.is_calendar:
        first = next(boundaries(spec, after, after + spec.interval.nominal))
        if first <= after:
            first += spec.interval.nominal
        query = MISSING.format(ends="generate_series($3::timestamptz, $4::timestamptz, $5::interval)")
        return await conn.fetchval(query, batch_export_id, COUNTED_AS_RUN, first, through, spec.interval.nominal)  # type: ignore[no-any-return]
    ends = [end for end in boundaries(spec, after, through) if end > after]
    return await conn.fetchval(MISSING.format(ends="unnest($3::timestamptz[])"), batch_export_id, COUNTED_AS_RUN, ends)  # type: ignore[no-any-return]
