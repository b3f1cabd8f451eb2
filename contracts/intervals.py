"""Interval arithmetic: where a batch export's intervals begin and end. The one place that says so.

Sub-day intervals (`hour`, `every 5/15 minutes`) are fixed steps of absolute time aligned to the
export's timezone (an hourly export in Asia/Kolkata ends its intervals at :30 UTC), so they never bend
around DST. Days and weeks end at a local wall-clock time (midnight plus `offset_hour`, on `offset_day`
for weeks) in the export's timezone, so they follow DST: 23 or 25 hours across a change.

The schedule is built from the same rules (`batch_exports.temporal.client.schedules.spec_for`), a backfill walks
`boundaries` and a run finds its start with `previous_boundary`, so a backfill produces exactly the
intervals the schedule does. A local time that a DST change skips or repeats is refused as a boundary
(`dst_conflict`): there the schedule's firing would be ambiguous.

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


def interval_ending_at(end: datetime, spec: IntervalSpec) -> DataInterval:
    """The data interval a run that ends at `end` exports.

    At a boundary (every scheduled run) it starts at the previous boundary. Elsewhere (a run
    triggered by hand) it is one whole interval long: the same local time a day or a week earlier
    for calendar intervals, one step earlier otherwise.
    """
    end = _utc(end)
    if next(boundaries(spec, end, end), None) == end:
        return DataInterval(previous_boundary(spec, end), end)
    if not spec.interval.is_calendar:
        return DataInterval(end - spec.interval.nominal, end)
    days = 7 if spec.interval is Interval.WEEK else 1
    local = end.astimezone(spec.zone).replace(tzinfo=None) - timedelta(days=days)
    return DataInterval(local.replace(tzinfo=spec.zone).astimezone(UTC), end)


def dst_conflict(spec: IntervalSpec, years: int = 30) -> str | None:
    """Why `offset_hour` cannot be a daily or weekly boundary in `timezone`, or None.

    Around a local time that a DST change skips (spring forward) or repeats (fall back), Temporal's
    calendar schedules fire at no time or at two (seen with the dev server: a daily 01:00 in
    Europe/Berlin also fires at the first 02:00 of the fall-back night). So an hour is refused when
    any wall-clock time from it to the next hour is skipped or repeated, in the next `years` years.
    """
    if not spec.interval.is_calendar:
        return None
    zone, hour = spec.zone, spec.offset_hour or 0
    first = datetime.now(UTC).year - 1
    day = datetime(first, 1, 1)
    while day.year < first + years:
        if (day - timedelta(days=1)).replace(tzinfo=zone).utcoffset() != (day + timedelta(days=1)).replace(
            tzinfo=zone
        ).utcoffset():  # the offset changes within these two days: look at the hour itself
            for minutes in range(0, 61, 15):
                local = day.replace(hour=hour) + timedelta(minutes=minutes)
                earlier, later = local.replace(tzinfo=zone, fold=0), local.replace(tzinfo=zone, fold=1)
                if earlier.utcoffset() != later.utcoffset():
                    skipped = earlier.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != local
                    what = "does not exist" if skipped else "happens twice"
                    return (
                        f"offset_hour {hour} is too close to a DST change in {spec.timezone}: {local:%H:%M} {what} "
                        f"on {local:%Y-%m-%d}; choose another hour"
                    )
        day += timedelta(days=1)
    return None


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("datetimes must be timezone-aware")
    return value.astimezone(UTC)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def run_workflow_id(batch_export_id: str, data_interval_end: datetime) -> str:
    """The id a Schedule gives the run it starts at `data_interval_end`; backfills use the same."""
    return f"{batch_export_id}-{data_interval_end.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"
