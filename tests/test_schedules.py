"""The calendar specs a batch export's schedule is made of."""

import uuid
from datetime import UTC, datetime

from pydantic import SecretStr
from temporalio.client import ScheduleOverlapPolicy, ScheduleRange

from batch_exports.destination_configs import DestinationType, NoOpConfig
from batch_exports.exports import BatchExport
from batch_exports.schedules import calendar_for, schedule_for
from batch_exports.settings import Settings
from workflows.inputs import RunInputs
from workflows.intervals import Interval


def export(interval: Interval, **fields: object) -> BatchExport:
    now = datetime(2024, 1, 1, tzinfo=UTC)
    values: dict[str, object] = {
        "id": uuid.uuid4(), "team_id": 7, "name": "nightly", "model": "events", "destination_id": uuid.uuid4(),
        "destination_type": DestinationType.NOOP, "destination_config": NoOpConfig(), "interval": interval,
        "paused": False, "deleted": False, "start_at": None, "end_at": None, "timezone": "UTC",
        "offset_day": None, "offset_hour": None, "hogql_query": None, "filters": None, "schema_": None,
        "created_at": now, "last_updated_at": now, "last_paused_at": None,
    }  # fmt: skip
    values.update(fields)
    return BatchExport.model_validate(values)


def test_hourly_runs_at_minute_zero_of_every_hour() -> None:
    spec = calendar_for(export(Interval.HOUR))
    assert spec.hour == (ScheduleRange(0, 23),) and spec.minute == (ScheduleRange(0),)


def test_every_five_minutes_steps_through_the_hour() -> None:
    spec = calendar_for(export(Interval.EVERY_5_MINUTES))
    assert spec.minute == (ScheduleRange(0, 59, 5),) and spec.hour == (ScheduleRange(0, 23),)


def test_weekly_uses_offset_day_and_hour() -> None:
    spec = calendar_for(export(Interval.WEEK, offset_day=1, offset_hour=6))
    assert spec.day_of_week == (ScheduleRange(1),) and spec.hour == (ScheduleRange(6),)


def test_schedule_runs_in_the_export_timezone_with_ids_only_in_its_input() -> None:
    settings = Settings(encryption_key=SecretStr("unused"), jitter_enabled=True)
    item = export(Interval.DAY, timezone="Europe/Berlin", offset_hour=2, paused=True)
    schedule = schedule_for(item, settings)
    assert schedule.spec.time_zone_name == "Europe/Berlin"
    assert schedule.spec.jitter == Interval.DAY.jitter
    assert schedule.policy.overlap == ScheduleOverlapPolicy.ALLOW_ALL
    assert schedule.state.paused
    action = schedule.action
    assert action.id == str(item.id)  # type: ignore[attr-defined]
    assert action.args == [  # type: ignore[attr-defined]
        RunInputs(batch_export_id=str(item.id), team_id=7, interval="day", timezone="Europe/Berlin")
    ]
