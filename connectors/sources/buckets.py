"""Counting a source by interval without reading its rows: what an estimate and an "earliest" backfill ask.

A source groups its rows by a bucket computed in SQL from the time column it bounds intervals on: for sub-day
intervals the bucket is the interval itself (`date_bin` with the export's phase), for daily and weekly ones the
local day the row falls in (shifted by `offset_hour`), which `intervals_of` folds into weeks. Only counts cross
the wire, one row per bucket that holds data.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from connectors.sources.clickhouse.http import Params as ClickHouseParams
from connectors.sources.params import Params
from contracts.intervals import IntervalSpec, boundaries, latest_boundary, phase

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
"""Before any row: where a search for the first one starts."""


COUNT_BUCKET = timedelta(minutes=5)
"""The buckets of `event_counts` (migration 0015): every boundary of every interval falls on one's start."""


def on_count_buckets(at: datetime) -> bool:
    """Whether `at` is where a bucket of `event_counts` starts (so a range between two such counts exactly)."""
    return (at - _EPOCH) % COUNT_BUCKET == timedelta(0)


@dataclass(frozen=True)
class Buckets:
    """How to group rows by interval (sub-day) or by local day (daily, weekly) for one export's spec."""

    spec: IntervalSpec

    def sql(self, p: Params, column: str) -> str:
        """The bucket of `column` (a timestamptz expression): a timestamptz (sub-day) or a local date."""
        if not self.spec.interval.is_calendar:
            step, origin = self.spec.interval.nominal, _EPOCH + phase(self.spec)
            return f"date_bin({p(step, '::interval')}, {column}, {p(origin, '::timestamptz')})"
        shift = timedelta(hours=self.spec.offset_hour or 0)
        return f"(({column} AT TIME ZONE {p(self.spec.timezone, '::text')}) - {p(shift, '::interval')})::date"

    def clickhouse_sql(self, p: ClickHouseParams, column: str) -> str:
        """The same bucket in ClickHouse's SQL, of a `DateTime64(6, 'UTC')` expression: a DateTime64 (sub-day)
        or a local Date."""
        if not self.spec.interval.is_calendar:
            step = int(self.spec.interval.nominal.total_seconds() * 1_000_000)
            origin = int((phase(self.spec)).total_seconds() * 1_000_000)
            return (f"fromUnixTimestamp64Micro(intDiv(toUnixTimestamp64Micro({column}) - {p(origin, 'Int64')}, "
                    f"{p(step, 'Int64')}) * {p(step, 'Int64')} + {p(origin, 'Int64')}, 'UTC')")  # fmt: skip
        shift = int((self.spec.offset_hour or 0) * 3600)
        local = f"toTimeZone({column}, {p(self.spec.timezone, 'String')})"
        return f"toDate({local} - toIntervalSecond({p(shift, 'Int64')}))"

    def start_of(self, bucket: datetime | date) -> datetime:
        """Where the bucket starts, in UTC: its interval's start (sub-day), or its local day's boundary hour."""
        if isinstance(bucket, datetime):
            return bucket.astimezone(UTC)
        local = datetime(bucket.year, bucket.month, bucket.day, self.spec.offset_hour or 0, tzinfo=self.spec.zone)
        return local.astimezone(UTC)

    def day_of(self, bucket: datetime | date) -> date:
        """The local day (export's timezone) a bucket is counted under."""
        return bucket.astimezone(self.spec.zone).date() if isinstance(bucket, datetime) else bucket


@dataclass(frozen=True)
class Count:
    """Rows of one bucket, and (where the source can say without reading them) their bytes."""

    bucket: datetime | date
    records: int


def intervals_of(spec: IntervalSpec, starts: list[datetime], start: datetime, end: datetime) -> list[datetime]:
    """The start of the interval each of `starts` (bucket starts within `[start, end)`) falls in."""
    if not spec.interval.is_calendar:
        return starts
    edges = list(boundaries(spec, start, end))
    found, i = [], 0
    for at in starts:  # in order: one walk over the boundaries
        while i + 1 < len(edges) and edges[i + 1] <= at:
            i += 1
        found.append(edges[i] if edges and edges[i] <= at else latest_boundary(spec, at))
    return found


def per_day(buckets: Buckets, counts: list[Count]) -> dict[date, int]:
    days: dict[date, int] = defaultdict(int)
    for count in counts:
        days[buckets.day_of(count.bucket)] += count.records
    return dict(sorted(days.items()))
