"""The schedule Temporal runs and the interval arithmetic backfills walk agree, DST nights included.

For each export the test asks Temporal when its schedule fires (ListScheduleMatchingTimes; jitter is
off in tests) and compares with `contracts.intervals.boundaries`.
"""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from batch_exports.temporal.schedules import matching_times
from contracts.intervals import Interval, IntervalSpec, boundaries, dst_conflict
from tests.support.stack import Project

START = datetime(2025, 1, 1, tzinfo=UTC)


async def agree(project: Project, fields: dict[str, Any], span: timedelta) -> None:
    body = {"name": "agreement", "destination": {"type": "NoOp"}, **fields}
    status, export = await project.request("POST", "batch_exports/", json=body)
    assert status == 201, export
    spec = IntervalSpec(Interval(fields["interval"]), fields.get("timezone", "UTC"), fields.get("offset_day"),
                        fields.get("offset_hour"))  # fmt: skip
    fired = await matching_times(project.stack.client, export["id"], START, START + span)
    expected = [b for b in boundaries(spec, START, START + span) if b > START]
    assert fired == expected, sorted(set(fired) ^ set(expected))[:5]


@pytest.mark.parametrize("timezone", ["Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Kolkata"])
async def test_daily_schedules_fire_at_the_boundaries_for_every_accepted_hour(project: Project, timezone: str) -> None:
    for hour in range(24):
        fields = {"interval": "day", "timezone": timezone, "offset_hour": hour}
        if dst_conflict(IntervalSpec(Interval.DAY, timezone, None, hour)):
            body = {"name": "refused", "destination": {"type": "NoOp"}, **fields}
            status, error = await project.request("POST", "batch_exports/", json=body)
            assert (status, error["attr"]) == (400, "offset_hour")
            continue
        await agree(project, fields, timedelta(days=730))


async def test_weekly_schedule_fires_at_the_boundaries(project: Project) -> None:
    await agree(project, {"interval": "week", "timezone": "America/New_York", "offset_day": 2, "offset_hour": 6},
                timedelta(days=730))  # fmt: skip


@pytest.mark.parametrize(
    ("interval", "timezone", "span"),
    [("hour", "Asia/Kolkata", timedelta(days=40)), ("hour", "Europe/Berlin", timedelta(days=40)),
     ("every 5 minutes", "Europe/Berlin", timedelta(days=3)), ("every 15 minutes", "UTC", timedelta(days=10))],
)  # fmt: skip
async def test_sub_day_schedules_fire_at_the_boundaries(
    project: Project, interval: str, timezone: str, span: timedelta
) -> None:
    await agree(project, {"interval": interval, "timezone": timezone}, span)
