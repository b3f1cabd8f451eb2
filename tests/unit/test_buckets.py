"""Counting by interval: local days fold into the export's weeks, and a day starts at its boundary hour."""

from datetime import UTC, date, datetime

from connectors.sources.buckets import Buckets, Count, intervals_of, per_day
from contracts.intervals import Interval, IntervalSpec


def test_local_days_start_at_the_boundary_hour_across_dst() -> None:
    buckets = Buckets(IntervalSpec(Interval.DAY, "Europe/Berlin", offset_hour=2))
    assert buckets.start_of(date(2025, 1, 10)) == datetime(2025, 1, 10, 1, tzinfo=UTC)
    assert buckets.start_of(date(2025, 7, 10)) == datetime(2025, 7, 10, 0, tzinfo=UTC)


def test_days_fold_into_the_weeks_that_hold_them() -> None:
    spec = IntervalSpec(Interval.WEEK, "UTC", offset_day=3, offset_hour=0)  # weeks start on Wednesdays
    buckets = Buckets(spec)
    days = [date(2025, 1, 1), date(2025, 1, 7), date(2025, 1, 8), date(2025, 1, 20)]  # Wed, Tue, Wed, Mon
    starts = [buckets.start_of(d) for d in days]
    weeks = intervals_of(spec, starts, datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 29, tzinfo=UTC))
    assert [w.date() for w in weeks] == [date(2025, 1, 1), date(2025, 1, 1), date(2025, 1, 8), date(2025, 1, 15)]


def test_sub_day_buckets_are_counted_under_the_local_day() -> None:
    buckets = Buckets(IntervalSpec(Interval.HOUR, "Asia/Kolkata"))
    counts = [Count(datetime(2025, 1, 1, 18, 30, tzinfo=UTC), 2), Count(datetime(2025, 1, 1, 17, 30, tzinfo=UTC), 3)]
    assert per_day(buckets, counts) == {date(2025, 1, 1): 3, date(2025, 1, 2): 2}
