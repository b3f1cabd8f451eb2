"""The Temporal Schedules: each export's (its id is the export's id, its action the run workflow), and the
service's own reconciliation schedule.

Days and weeks are calendar specs in the export's timezone, so their boundaries follow local midnight
and DST; sub-day intervals are fixed steps aligned to the timezone (see `contracts.intervals`). Where
one interval ends and the next begins is whatever the schedule says: `matching_times` asks it.
"""

import contextlib
from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.workflowservice.v1 import ListScheduleMatchingTimesRequest
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.common import RetryPolicy
from temporalio.service import RPCError

from batch_exports.settings import Settings
from batch_exports.store.exports import BatchExport
from batch_exports.temporal.client import is_not_found
from contracts.intervals import Interval, phase
from contracts.search_attributes import search_attributes
from contracts.timeouts import execution_timeout
from contracts.workflows import RECONCILE_WORKFLOW, RUN_WORKFLOW, RunInputs

RECONCILE_SCHEDULE_ID = "batch-exports-reconcile"

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
    return f"{export.name}: {export.model} to {export.destination_type}, {export.interval.value}"


def schedule_for(export: BatchExport, settings: Settings) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            RUN_WORKFLOW,
            RunInputs(batch_export_id=str(export.id), team_id=export.team_id, spec=export.interval_spec),
            id=str(export.id),
            task_queue=settings.task_queue,
            typed_search_attributes=search_attributes(str(export.id), export.team_id, export.destination_type),
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


async def sync(client: Client, export: BatchExport, settings: Settings) -> None:
    """Make the export's schedule say what the export says: replace it, or create it when missing."""
    schedule = schedule_for(export, settings)

    def replace(_: ScheduleUpdateInput) -> ScheduleUpdate:
        return ScheduleUpdate(schedule=schedule)

    try:
        await client.get_schedule_handle(str(export.id)).update(replace)
    except RPCError as error:
        if not is_not_found(error):
            raise
        await client.create_schedule(str(export.id), schedule)


async def delete(client: Client, export_id: str) -> None:
    """Delete the export's schedule; one already gone is fine."""
    try:
        await client.get_schedule_handle(export_id).delete()
    except RPCError as error:
        if not is_not_found(error):
            raise


async def ensure_reconcile_schedule(client: Client, settings: Settings) -> None:
    """Create the schedule that runs reconciliation, unless it exists."""
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(
            RECONCILE_WORKFLOW,
            id=RECONCILE_SCHEDULE_ID,
            task_queue=settings.task_queue,
            execution_timeout=timedelta(minutes=10),
            static_summary="Reconcile batch-export runs and schedules with Temporal",
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(seconds=settings.reconcile_every_seconds))]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )
    with contextlib.suppress(ScheduleAlreadyRunningError):
        await client.create_schedule(RECONCILE_SCHEDULE_ID, schedule)


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
