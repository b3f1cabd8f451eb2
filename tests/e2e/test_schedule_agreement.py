"""The schedule Temporal runs and the interval arithmetic backfills walk agree, DST nights included.

For each export the test asks Temporal when its schedule fires (ListScheduleMatchingTimes; jitter is
off in tests). Sub-day schedules fire exactly at `contracts.intervals.boundaries`. Calendar schedules in a DST
zone may fire twice or not at all around a change: there the test plays what the service does with each
fire (the run workflow's rule) and with each boundary no fire came for (reconciliation's), and checks that
the intervals exported are exactly the boundaries, none missing, none twice.
"""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from batch_exports.temporal.schedules import matching_times
from contracts.intervals import Interval, IntervalSpec, boundaries, is_boundary, last_whole_interval
from tests.support.stack import Project

START = datetime(2025, 1, 1, tzinfo=UTC)


async def fire_times(project: Project, fields: dict[str, Any], span: timedelta) -> tuple[IntervalSpec, list[datetime]]:
    body = {"name": "agreement", "destination": {"type": "NoOp"}, **fields}
    status, export = await project.request("POST", "batch_exports/", json=body)
    assert status == 201, export
    spec = IntervalSpec(Interval(fields["interval"]), fields.get("timezone", "UTC"), fields.get("offset_day"),
                        fields.get("offset_hour"))  # fmt: skip
    return spec, await matching_times(project.stack.client, export["id"], START, START + span)


async def agree(project: Project, fields: dict[str, Any], span: timedelta) -> None:
    spec, fired = await fire_times(project, fields, span)
    expected = [b for b in boundaries(spec, START, START + span) if b > START]
    assert fired == expected, sorted(set(fired) ^ set(expected))[:5]


def exported_intervals(spec: IntervalSpec, fired: list[datetime], end: datetime) -> list[datetime]:
    """The ends of the intervals the service exports for these fires: a fire at a boundary runs its interval
    unless it has a run; one between boundaries hands the last whole interval over, unless it has a run;
    reconciliation then runs each boundary that still has none."""
    have: set[datetime] = set()
    exported = []
    for fire in fired:
        interval_end = fire if is_boundary(spec, fire) else last_whole_interval(spec, fire).end
        if interval_end not in have:
            have.add(interval_end)
            exported.append(interval_end)
    exported += [b for b in boundaries(spec, START, end) if b > START and b not in have]
    return exported


@pytest.mark.parametrize("timezone", ["US/Pacific", "America/New_York", "Europe/London", "Europe/Berlin"])
async def test_daily_exports_in_dst_zones_export_each_interval_once_for_every_offset(
    project: Project, timezone: str
) -> None:
    span = timedelta(days=730)
    irregular = 0
    for hour in (0, 1, 2, 3):
        spec, fired = await fire_times(project, {"interval": "day", "timezone": timezone, "offset_hour": hour}, span)
        irregular += sum(not is_boundary(spec, fire) for fire in fired)
        irregular += len(set(boundaries(spec, START, START + span)) - set(fired) - {START})
        exported = exported_intervals(spec, fired, START + span)
        expected = [b for b in boundaries(spec, START, START + span) if b > START]
        assert sorted(exported) == expected, (hour, sorted(set(exported) ^ set(expected))[:5])
        assert len(exported) == len(set(exported)) == len(expected), hour
        assert all(is_boundary(spec, b) for b in exported)
    assert irregular > 0  # the DST nights are really there: the rules above are exercised


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
