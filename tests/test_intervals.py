"""Interval arithmetic and the schedule specs built from it."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from workflows.intervals import Interval, interval_ending_at


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("interval", "length"),
    [
        (Interval.HOUR, timedelta(hours=1)),
        (Interval.EVERY_5_MINUTES, timedelta(minutes=5)),
        (Interval.EVERY_15_MINUTES, timedelta(minutes=15)),
        (Interval.DAY, timedelta(days=1)),
        (Interval.WEEK, timedelta(weeks=1)),
    ],
)
def test_utc_intervals_have_their_nominal_length(interval: Interval, length: timedelta) -> None:
    got = interval_ending_at(utc(2024, 6, 3, 0, 0), interval)
    assert got.end == utc(2024, 6, 3, 0, 0)
    assert got.end - got.start == length


def test_daily_interval_across_spring_forward_lasts_23_hours() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    end = datetime(2024, 4, 1, 0, 0, tzinfo=berlin)  # local midnight after the change on 31 March
    got = interval_ending_at(end, Interval.DAY, "Europe/Berlin")
    assert got.start == datetime(2024, 3, 31, 0, 0, tzinfo=berlin)
    assert got.end - got.start == timedelta(hours=23)
    assert got.start == utc(2024, 3, 30, 23, 0)


def test_daily_interval_across_fall_back_lasts_25_hours() -> None:
    got = interval_ending_at(datetime(2024, 10, 28, tzinfo=ZoneInfo("Europe/Berlin")), Interval.DAY, "Europe/Berlin")
    assert got.end - got.start == timedelta(hours=25)


def test_weekly_interval_keeps_local_wall_time_with_offset_hour() -> None:
    zone = ZoneInfo("America/New_York")
    end = datetime(2024, 3, 12, 6, 0, tzinfo=zone)  # Tuesday 06:00 local, after the change on 10 March
    got = interval_ending_at(end, Interval.WEEK, "America/New_York")
    assert got.start.astimezone(zone) == datetime(2024, 3, 5, 6, 0, tzinfo=zone)
    assert got.end - got.start == timedelta(days=7) - timedelta(hours=1)


def test_naive_end_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        interval_ending_at(datetime(2024, 1, 1), Interval.HOUR)


def test_jitter_grows_with_the_interval() -> None:
    assert Interval.HOUR.jitter == timedelta(minutes=15)
    assert Interval.DAY.jitter == timedelta(minutes=20)
    assert Interval.WEEK.jitter == timedelta(minutes=30)
    assert Interval.EVERY_5_MINUTES.jitter == timedelta(minutes=1)
