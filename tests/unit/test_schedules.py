"""The calendar specs a batch export's schedule is made of."""

import uuid
from datetime import UTC, datetime, timedelta

from pydantic import SecretStr
from temporalio.client import ScheduleOverlapPolicy, ScheduleRange

from batch_exports.exports.export import BatchExport
from batch_exports.settings import Settings
from batch_exports.temporal.schedules import schedule_for, spec_for
from connectors.destinations.noop import NoOpConfig
from contracts.intervals import Interval, IntervalSpec
from contracts.workflows import RunInputs


def export(interval: Interval, **fields: object) -> BatchExport:
    now = datetime(2024, 1, 1, tzinfo=UTC)
    values: dict[str, object] = {
        "id": uuid.uuid4(), "team_id": 7, "name": "nightly", "model": "events", "destination_id": uuid.uuid4(),
        "destination": {"type": "NoOp", "config": NoOpConfig()}, "interval": interval,
        "paused": False, "deleted": False, "start_at": None, "end_at": None, "timezone": "UTC",
        "offset_day": None, "offset_hour": None, "hogql_query": None, "filters": None, "schema_": None,
        "created_at": now, "last_updated_at": now, "last_paused_at": None,
    }  # fmt: skip
    values.update(fields)
    return BatchExport.model_validate(values)


SETTINGS = Settings(encryption_key=SecretStr("unused"), jitter_enabled=False)


def test_hourly_steps_whole_hours_aligned_to_the_timezone() -> None:
    (utc,) = spec_for(export(Interval.HOUR), SETTINGS).intervals
    assert (utc.every, utc.offset) == (timedelta(hours=1), timedelta(0))
    (kolkata,) = spec_for(export(Interval.HOUR, timezone="Asia/Kolkata"), SETTINGS).intervals
    assert kolkata.offset == timedelta(minutes=30)


def test_every_five_minutes_is_a_fixed_step() -> None:
    spec = spec_for(export(Interval.EVERY_5_MINUTES, timezone="Europe/Berlin"), SETTINGS)
    assert spec.calendars == [] and spec.intervals[0].every == timedelta(minutes=5)


def test_weekly_uses_offset_day_and_hour() -> None:
    (spec,) = spec_for(export(Interval.WEEK, offset_day=1, offset_hour=6), SETTINGS).calendars
    assert spec.day_of_week == (ScheduleRange(1),) and spec.hour == (ScheduleRange(6),)


def test_schedule_runs_in_the_export_timezone_with_ids_only_in_its_input() -> None:
    settings = Settings(encryption_key=SecretStr("unused"), jitter_enabled=True)
    item = export(Interval.DAY, timezone="Europe/Berlin", offset_hour=4, paused=True)
    schedule = schedule_for(item, settings)
    assert schedule.spec.time_zone_name == "Europe/Berlin"
    assert schedule.spec.jitter == Interval.DAY.jitter
    assert schedule.policy.overlap == ScheduleOverlapPolicy.ALLOW_ALL
    assert schedule.state.paused
    action = schedule.action
    assert action.id == str(item.id)  # type: ignore[attr-defined]
    assert action.execution_timeout == timedelta(days=6)  # type: ignore[attr-defined]
    assert action.retry_policy.maximum_attempts == settings.run_max_attempts  # type: ignore[attr-defined]
    assert action.args == [  # type: ignore[attr-defined]
        RunInputs(batch_export_id=str(item.id), team_id=7, spec=IntervalSpec(Interval.DAY, "Europe/Berlin", None, 4))
    ]
