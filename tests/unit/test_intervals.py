"""Interval arithmetic: boundaries, the interval a time closes, and hours a DST change makes ambiguous."""

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from contracts.intervals import Interval, IntervalSpec, boundaries, dst_conflict, interval_ending_at, run_workflow_id


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("interval", "length"),
    [
        (Interval.HOUR, timedelta(hours=1)),
        (Interval.EVERY_5_MINUTES, timedelta(minutes=5)),
        (Interval.EVERY_15_MINUTES, timedelta(minutes=15)),
        (Interval.DAY, timedelta(days=1)),
    ],
)
def test_utc_intervals_have_their_nominal_length(interval: Interval, length: timedelta) -> None:
    got = interval_ending_at(utc(2024, 6, 3), IntervalSpec(interval))
    assert (got.start, got.end) == (utc(2024, 6, 3) - length, utc(2024, 6, 3))


def test_weekly_interval_ends_on_offset_day_and_hour() -> None:
    spec = IntervalSpec(Interval.WEEK, "UTC", offset_day=1, offset_hour=6)  # Mondays 06:00
    assert list(boundaries(spec, utc(2024, 1, 1), utc(2024, 1, 16))) == [
        utc(2024, 1, 1, 6),
        utc(2024, 1, 8, 6),
        utc(2024, 1, 15, 6),
    ]
    assert interval_ending_at(utc(2024, 1, 15, 6), spec).start == utc(2024, 1, 8, 6)


def test_daily_interval_across_spring_forward_lasts_23_hours() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    got = interval_ending_at(datetime(2024, 4, 1, tzinfo=berlin), IntervalSpec(Interval.DAY, "Europe/Berlin"))
    assert got.start == datetime(2024, 3, 31, tzinfo=berlin) == utc(2024, 3, 30, 23)
    assert got.end - got.start == timedelta(hours=23)


def test_daily_interval_across_fall_back_lasts_25_hours() -> None:
    end = datetime(2024, 10, 28, tzinfo=ZoneInfo("Europe/Berlin"))
    got = interval_ending_at(end, IntervalSpec(Interval.DAY, "Europe/Berlin"))
    assert got.end - got.start == timedelta(hours=25)


def test_weekly_interval_keeps_local_wall_time_across_dst() -> None:
    zone = ZoneInfo("America/New_York")
    spec = IntervalSpec(Interval.WEEK, "America/New_York", offset_day=2, offset_hour=6)  # Tuesdays 06:00
    got = interval_ending_at(datetime(2024, 3, 12, 6, tzinfo=zone), spec)
    assert got.start.astimezone(zone) == datetime(2024, 3, 5, 6, tzinfo=zone)
    assert got.end - got.start == timedelta(days=7) - timedelta(hours=1)


def test_hourly_boundaries_follow_a_half_hour_timezone() -> None:
    spec = IntervalSpec(Interval.HOUR, "Asia/Kolkata")
    assert list(boundaries(spec, utc(2024, 1, 1), utc(2024, 1, 1, 2))) == [
        utc(2024, 1, 1, 0, 30),
        utc(2024, 1, 1, 1, 30),
    ]


def test_consecutive_boundaries_tile_a_year_without_gaps() -> None:
    spec = IntervalSpec(Interval.DAY, "Europe/Berlin", offset_hour=4)
    ends = list(boundaries(spec, utc(2024, 1, 1), utc(2025, 1, 1)))
    assert len(ends) == 366
    for previous, end in pairwise(ends):
        assert interval_ending_at(end, spec).start == previous


@pytest.mark.parametrize(
    ("timezone", "hour", "refused"),
    [("Europe/Berlin", 2, True), ("Europe/Berlin", 1, True), ("Europe/Berlin", 0, False), ("Europe/Berlin", 3, False),
     ("America/New_York", 1, True), ("UTC", 2, False), ("Asia/Kolkata", 2, False)],
)  # fmt: skip
def test_hours_next_to_a_dst_change_are_refused(timezone: str, hour: int, refused: bool) -> None:
    conflict = dst_conflict(IntervalSpec(Interval.DAY, timezone, offset_hour=hour))
    assert (conflict is not None) == refused
    if refused:
        assert "choose another hour" in str(conflict)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        interval_ending_at(datetime(2024, 1, 1), IntervalSpec(Interval.HOUR))


def test_run_workflow_id_is_what_a_schedule_gives() -> None:
    assert run_workflow_id("abc", utc(2024, 1, 2, 3)) == "abc-2024-01-02T03:00:00Z"


def test_jitter_grows_with_the_interval() -> None:
    assert Interval.HOUR.jitter == timedelta(minutes=15)
    assert Interval.DAY.jitter == timedelta(minutes=20)
    assert Interval.WEEK.jitter == timedelta(minutes=30)
    assert Interval.EVERY_5_MINUTES.jitter == timedelta(minutes=1)


def test_a_run_triggered_between_boundaries_exports_one_whole_interval() -> None:
    got = interval_ending_at(utc(2024, 1, 1, 6, 24), IntervalSpec(Interval.HOUR))
    assert (got.start, got.end) == (utc(2024, 1, 1, 5, 24), utc(2024, 1, 1, 6, 24))
    berlin = ZoneInfo("Europe/Berlin")
    got = interval_ending_at(datetime(2024, 4, 1, 12, tzinfo=berlin), IntervalSpec(Interval.DAY, "Europe/Berlin"))
    assert got.start == datetime(2024, 3, 31, 12, tzinfo=berlin)
