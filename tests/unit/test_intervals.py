"""Interval arithmetic: boundaries, the interval a time closes, DST nights."""

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from contracts.intervals import Interval, IntervalSpec, boundaries, is_boundary, last_whole_interval, run_workflow_id


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
    got = last_whole_interval(IntervalSpec(interval), utc(2024, 6, 3))
    assert (got.start, got.end) == (utc(2024, 6, 3) - length, utc(2024, 6, 3))


def test_weekly_interval_ends_on_offset_day_and_hour() -> None:
    spec = IntervalSpec(Interval.WEEK, "UTC", offset_day=1, offset_hour=6)  # Mondays 06:00
    assert list(boundaries(spec, utc(2024, 1, 1), utc(2024, 1, 16))) == [
        utc(2024, 1, 1, 6),
        utc(2024, 1, 8, 6),
        utc(2024, 1, 15, 6),
    ]
    assert last_whole_interval(spec, utc(2024, 1, 15, 6)).start == utc(2024, 1, 8, 6)


def test_daily_interval_across_spring_forward_lasts_23_hours() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    got = last_whole_interval(IntervalSpec(Interval.DAY, "Europe/Berlin"), datetime(2024, 4, 1, tzinfo=berlin))
    assert got.start == datetime(2024, 3, 31, tzinfo=berlin) == utc(2024, 3, 30, 23)
    assert got.end - got.start == timedelta(hours=23)


def test_daily_interval_across_fall_back_lasts_25_hours() -> None:
    end = datetime(2024, 10, 28, tzinfo=ZoneInfo("Europe/Berlin"))
    got = last_whole_interval(IntervalSpec(Interval.DAY, "Europe/Berlin"), end)
    assert got.end - got.start == timedelta(hours=25)


def test_weekly_interval_keeps_local_wall_time_across_dst() -> None:
    zone = ZoneInfo("America/New_York")
    spec = IntervalSpec(Interval.WEEK, "America/New_York", offset_day=2, offset_hour=6)  # Tuesdays 06:00
    got = last_whole_interval(spec, datetime(2024, 3, 12, 6, tzinfo=zone))
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
        assert last_whole_interval(spec, end).start == previous


def test_a_repeated_local_hour_is_a_boundary_once_and_a_skipped_one_where_the_clocks_jump() -> None:
    zone = ZoneInfo("America/New_York")
    fall_back = IntervalSpec(Interval.DAY, "America/New_York", offset_hour=1)  # 01:00 happens twice on 3 Nov
    ends = list(boundaries(fall_back, utc(2024, 11, 2), utc(2024, 11, 5)))
    assert ends == [utc(2024, 11, 2, 5), utc(2024, 11, 3, 5), utc(2024, 11, 4, 6)]  # the first 01:00 (EDT) on 3 Nov
    assert {b.astimezone(zone).hour for b in ends} == {1}
    spring = IntervalSpec(Interval.DAY, "America/New_York", offset_hour=2)  # 02:00 does not happen on 10 Mar
    assert utc(2024, 3, 10, 7) in list(boundaries(spring, utc(2024, 3, 9), utc(2024, 3, 11)))  # 03:00 EDT


@pytest.mark.parametrize("timezone", ["US/Pacific", "America/New_York", "Europe/London", "Europe/Berlin"])
def test_every_hour_tiles_two_years_in_every_timezone(timezone: str) -> None:
    for hour in range(24):
        spec = IntervalSpec(Interval.DAY, timezone, offset_hour=hour)
        ends = list(boundaries(spec, utc(2025, 1, 1), utc(2027, 1, 1)))
        assert len(ends) in (730, 731)
        assert all(timedelta(hours=22) <= b - a <= timedelta(hours=26) for a, b in pairwise(ends))


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        last_whole_interval(IntervalSpec(Interval.HOUR), datetime(2024, 1, 1))


def test_run_workflow_id_is_what_a_schedule_gives() -> None:
    assert run_workflow_id("abc", utc(2024, 1, 2, 3)) == "abc-2024-01-02T03:00:00Z"


def test_jitter_grows_with_the_interval() -> None:
    assert Interval.HOUR.jitter == timedelta(minutes=15)
    assert Interval.DAY.jitter == timedelta(minutes=20)
    assert Interval.WEEK.jitter == timedelta(minutes=30)
    assert Interval.EVERY_5_MINUTES.jitter == timedelta(minutes=1)


def test_a_run_fired_between_boundaries_exports_the_last_whole_interval() -> None:
    got = last_whole_interval(IntervalSpec(Interval.HOUR), utc(2024, 1, 1, 6, 24))
    assert (got.start, got.end) == (utc(2024, 1, 1, 5), utc(2024, 1, 1, 6))
    assert not is_boundary(IntervalSpec(Interval.HOUR), utc(2024, 1, 1, 6, 24))
    berlin = ZoneInfo("Europe/Berlin")
    got = last_whole_interval(IntervalSpec(Interval.DAY, "Europe/Berlin"), datetime(2024, 4, 1, 12, tzinfo=berlin))
    assert (got.start, got.end) == (datetime(2024, 3, 31, tzinfo=berlin), datetime(2024, 4, 1, tzinfo=berlin))
    # A daily 01:00 in Berlin fires again at the first 02:00 of the fall-back night: the same interval.
    spec = IntervalSpec(Interval.DAY, "Europe/Berlin", offset_hour=1)
    extra = datetime(2025, 10, 26, 2, tzinfo=berlin)
    assert last_whole_interval(spec, extra).end == datetime(2025, 10, 26, 1, tzinfo=berlin)
