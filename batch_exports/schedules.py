"""The Temporal Schedule of a batch export: its id is the export's id, its action the run workflow.

Days and weeks are calendar specs in the export's timezone, so their boundaries follow local midnight
and DST; sub-day intervals are fixed steps aligned to the timezone (see `workflows.intervals`). Where
one interval ends and the next begins is whatever the schedule says: `matching_times` asks it.
"""

from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.workflowservice.v1 import ListScheduleMatchingTimesRequest
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleCalendarSpec,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
)
from temporalio.common import RetryPolicy

from batch_exports.exports import BatchExport
from batch_exports.settings import Settings
from batch_exports.temporal import search_attributes
from workflows.inputs import RUN_WORKFLOW, RunInputs
from workflows.intervals import Interval, phase
from workflows.timeouts import execution_timeout

CATCHUP_WINDOW = timedelta(days=1)
"""Runs missed while the cluster was down for less than this are still started when it returns."""


def spec_for(export: BatchExport, settings: Settings) -> ScheduleSpec:
    jitter = export.interval.jitter if settings.jitter_enabled else None
    if not export.interval.is_calendar:
        step = ScheduleIntervalSpec(every=export.interval.nominal, offset=phase(export.interval_spec))
        return ScheduleSpec(intervals=[step], start_at=export.start_at, end_at=export.end_at, jitter=jitter)
    weekdays = (ScheduleRange(export.offset_day or 0),) if export.interval is Interval.WEEK else (ScheduleRange(0, 6),)
    calendar = ScheduleCalendarSpec(hour=(ScheduleRange(export.offset_hour or 0),), day_of_week=weekdays)
    return ScheduleSpec(
        calendars=[calendar],
        time_zone_name=export.timezone,
        start_at=export.start_at,
        end_at=export.end_at,
        jitter=jitter,
    )


def run_retry_policy(settings: Settings) -> RetryPolicy:
    """How often Temporal executes a failed run again (each failed execution is `FailedRetryable`)."""
    return RetryPolicy(
        initial_interval=timedelta(seconds=settings.run_retry_initial_seconds),
        maximum_attempts=settings.run_max_attempts,
    )


def summary(export: BatchExport) -> str:
    """What an operator reads in the Temporal UI."""
    return f"{export.name}: {export.model} to {export.destination_type.value}, {export.interval.value}"


def schedule_for(export: BatchExport, settings: Settings) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            RUN_WORKFLOW,
            RunInputs(
                batch_export_id=str(export.id),
                team_id=export.team_id,
                interval=export.interval.value,
                timezone=export.timezone,
                offset_day=export.offset_day,
                offset_hour=export.offset_hour,
            ),
            id=str(export.id),
            task_queue=settings.task_queue,
            typed_search_attributes=search_attributes(str(export.id), export.team_id, export.destination_type.value),
            static_summary=summary(export),
            execution_timeout=execution_timeout(export.interval),
            retry_policy=run_retry_policy(settings),
        ),
        spec=spec_for(export, settings),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.ALLOW_ALL, catchup_window=CATCHUP_WINDOW),
        state=ScheduleState(paused=export.paused, note="paused through the API" if export.paused else None),
    )


async def create(client: Client, export: BatchExport, settings: Settings) -> None:
    await client.create_schedule(str(export.id), schedule_for(export, settings))


async def matching_times(client: Client, schedule_id: str, start: datetime, end: datetime) -> list[datetime]:
    """The times in `[start, end]` at which the schedule starts a run (its nominal times, before jitter)."""
    start_ts, end_ts = Timestamp(), Timestamp()
    start_ts.FromDatetime(start.astimezone(UTC))
    end_ts.FromDatetime(end.astimezone(UTC))
    response = await client.workflow_service.list_schedule_matching_times(
        ListScheduleMatchingTimesRequest(
            namespace=client.namespace, schedule_id=schedule_id, start_time=start_ts, end_time=end_ts
        )
    )
    return [t.ToDatetime(tzinfo=UTC) for t in response.start_time]
