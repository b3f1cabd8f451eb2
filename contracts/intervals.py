"""Interval arithmetic: where a batch export's intervals begin and end. The one place that says so.

Sub-day intervals (`hour`, `every 5/15 minutes`) are fixed steps of absolute time aligned to the
export's timezone (an hourly export in Asia/Kolkata ends its intervals at :30 UTC), so they never bend
around DST. Days and weeks end at a local wall-clock time (midnight plus `offset_hour`, on `offset_day`
for weeks) in the export's timezone, so they follow DST: 23 or 25 hours across a change.

The schedule is built from the same rules (`batch_exports.temporal.client.schedules.spec_for`), a backfill walks
`boundaries` and a run finds its start with `previous_boundary`, so a backfill produces exactly the
intervals the schedule does. Every offset is a boundary in every timezone: a local time that a DST change
repeats is a boundary once (its first occurrence), one it skips falls at the instant the clocks jump. Around
such a night Temporal's calendar schedule may fire twice or not at all; a fire off a boundary exports the
last whole interval (`last_whole_interval`) only if it has no run yet, and reconciliation runs a boundary
the schedule did not fire at, so every interval is exported once.

Pure functions over aware datetimes, safe to call from workflow code.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo


class Interval(StrEnum):
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"
    EVERY_5_MINUTES = "every 5 minutes"
    EVERY_15_MINUTES = "every 15 minutes"

    @property
    def nominal(self) -> timedelta:
        """The interval's length away from DST changes."""
        return _NOMINAL[self]

    @property
    def is_calendar(self) -> bool:
        """True where boundaries are local calendar days (and so move with DST)."""
        return self in (Interval.DAY, Interval.WEEK)

    @property
    def jitter(self) -> timedelta:
        """How far a scheduled run may be delayed to spread load: hour 15 min, day 20, week 30, N min N/5."""
        return _JITTER[self]


_NOMINAL = {
    Interval.HOUR: timedelta(hours=1),
    Interval.DAY: timedelta(days=1),
    Interval.WEEK: timedelta(weeks=1),
    Interval.EVERY_5_MINUTES: timedelta(minutes=5),
    Interval.EVERY_15_MINUTES: timedelta(minutes=15),
}
_JITTER = {
    Interval.HOUR: timedelta(minutes=15),
    Interval.DAY: timedelta(minutes=20),
    Interval.WEEK: timedelta(minutes=30),
    Interval.EVERY_5_MINUTES: timedelta(minutes=1),
    Interval.EVERY_15_MINUTES: timedelta(minutes=3),
}


@dataclass(frozen=True)
class DataInterval:
    start: datetime
    end: datetime


@dataclass(frozen=True)
class IntervalSpec:
    """What decides an export's boundaries."""

    interval: Interval
    timezone: str = "UTC"
    offset_day: int | None = None
    """0 = Sunday ... 6 = Saturday; weekly exports only."""
    offset_hour: int | None = None
    """0-23, local time; daily and weekly exports only."""

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def phase(spec: IntervalSpec) -> timedelta:
    """Where in each fixed step a sub-day interval's boundaries fall, so that they land on local :00."""
    offset = datetime(2001, 1, 1, tzinfo=spec.zone).utcoffset() or timedelta(0)
    return offset % spec.interval.nominal


def boundaries(spec: IntervalSpec, start: datetime, end: datetime) -> Iterator[datetime]:
    """Every boundary `b` with `start <= b <= end`, in order, in UTC."""
    start, end = _utc(start), _utc(end)
    if not spec.interval.is_calendar:
        step, shift = spec.interval.nominal, phase(spec)
        first = _EPOCH + shift + step * -((_EPOCH + shift - start) // step)
        while first <= end:
            yield first
            first += step
        return
    zone, hour = spec.zone, spec.offset_hour or 0
    day = start.astimezone(zone).date() - timedelta(days=1)
    while True:
        local = datetime(day.year, day.month, day.day, hour, tzinfo=zone)
        candidate = local.astimezone(UTC)
        if candidate > end:
            return
        weekly_match = spec.interval is not Interval.WEEK or (day.weekday() + 1) % 7 == (spec.offset_day or 0)
        if candidate >= start and weekly_match:
            yield candidate
        day += timedelta(days=1)


def previous_boundary(spec: IntervalSpec, end: datetime) -> datetime:
    """The latest boundary strictly before `end`: where the interval that closes at `end` starts."""
    end = _utc(end)
    window = spec.interval.nominal * 2 + timedelta(days=1)
    return [b for b in boundaries(spec, end - window, end) if b < end][-1]


def latest_boundary(spec: IntervalSpec, at: datetime) -> datetime:
    """The latest boundary at or before `at`."""
    at = _utc(at)
    window = spec.interval.nominal * 2 + timedelta(days=1)
    return list(boundaries(spec, at - window, at))[-1]


def last_whole_interval(spec: IntervalSpec, at: datetime) -> DataInterval:
    """The interval that ends at the latest boundary at or before `at`: what a run fired at `at` exports.

    A schedule fires at a boundary, so this is the interval ending at the fire. A run triggered by hand
    between boundaries, or an extra fire of a calendar schedule on a DST night, gets the last interval
    that has ended: the same interval (and workflow id) as its scheduled run, never an overlapping one.
    """
    end = latest_boundary(spec, at)
    return DataInterval(previous_boundary(spec, end), end)


def is_boundary(spec: IntervalSpec, at: datetime) -> bool:
    return next(boundaries(spec, at, at), None) == _utc(at)


def in_utc_range(value: datetime) -> datetime:
    """`value` (UTC when naive), refused with OverflowError when it or its UTC time leaves the years 1 to 9999
    (`0001-01-01T00:00:00+14:00` is in the year 0 in UTC, which no datetime holds)."""
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    value.astimezone(UTC)  # raises OverflowError out of range
    return value


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("datetimes must be timezone-aware")
    return value.astimezone(UTC)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def run_workflow_id(batch_export_id: str, data_interval_end: datetime) -> str:
    """The id a Schedule gives the run it starts at `data_interval_end`; backfills use the same."""
    return f"{batch_export_id}-{data_interval_end.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"
