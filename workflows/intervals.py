"""Interval arithmetic: the one place that says which data interval a scheduled time closes.

Pure functions over aware datetimes, safe to call from workflow code. Day and week boundaries are
local midnight (plus `offset_hour`) in the export's timezone, so they follow DST: a daily interval
across a DST change lasts 23 or 25 hours.
"""

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


def interval_ending_at(end: datetime, interval: Interval, timezone: str = "UTC") -> DataInterval:
    """The data interval that closes at `end` (a scheduled time): it starts at the previous boundary.

    For fixed-length intervals that is `end - length`; for days and weeks it is the same local wall
    time one day or one week earlier in `timezone`.
    """
    if end.tzinfo is None:
        raise ValueError("end must be timezone-aware")
    end = end.astimezone(UTC)
    if not interval.is_calendar:
        return DataInterval(end - interval.nominal, end)
    zone = ZoneInfo(timezone)
    local_end = end.astimezone(zone)
    days = 7 if interval is Interval.WEEK else 1
    local_start = (local_end.replace(tzinfo=None) - timedelta(days=days)).replace(tzinfo=zone)
    return DataInterval(local_start.astimezone(UTC), end)
