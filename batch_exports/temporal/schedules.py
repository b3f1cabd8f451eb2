"""The Temporal Schedule of each export (its id is the export's id, its action the run workflow), and the
long-lived reconciliation workflow.

Days and weeks are calendar specs in the export's timezone, so their boundaries follow local midnight
and DST; sub-day intervals are fixed steps aligned to the timezone (see `contracts.intervals`). Where
one interval ends and the next begins is whatever the schedule says: `matching_times` asks it.
"""

import contextlib
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.schedule.v1 import Schedule as ScheduleProto
from temporalio.api.workflowservice.v1 import ListScheduleMatchingTimesRequest
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleCalendarSpec,
    ScheduleDescription,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.common import RetryPolicy, TypedSearchAttributes, WorkflowIDConflictPolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from batch_exports.exports.export import BatchExport
from batch_exports.settings import Settings
from batch_exports.temporal.client import is_not_found
from contracts.intervals import DataInterval, Interval, phase, run_workflow_id
from contracts.search_attributes import search_attributes
from contracts.timeouts import execution_timeout
from contracts.workflows import RECONCILE_WORKFLOW, RUN_WORKFLOW, ReconcileInputs, RunInputs

RECONCILE_WORKFLOW_ID = "batch-exports-reconcile"

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


def memo(export: BatchExport) -> dict[str, Any]:
    """What the schedule (and each run it starts) carries for operators to read."""
    return {
        "name": export.name,
        "team_id": export.team_id,
        "destination_type": export.destination_type,
        "interval": export.interval.value,
        "timezone": export.timezone,
    }


def schedule_search_attributes(export: BatchExport) -> TypedSearchAttributes:
    """The schedule's own search attributes: `temporal schedule list --query "TeamId = 2"` finds it."""
    return search_attributes(str(export.id), export.team_id, export.destination_type, name=export.name)


def schedule_for(export: BatchExport, settings: Settings) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            RUN_WORKFLOW,
            RunInputs(batch_export_id=str(export.id), team_id=export.team_id, spec=export.interval_spec),
            id=str(export.id),
            task_queue=settings.task_queue,
            typed_search_attributes=schedule_search_attributes(export),
            memo=memo(export),
            static_summary=summary(export),
            execution_timeout=execution_timeout(export.interval),
            retry_policy=run_retry_policy(settings),
        ),
        spec=spec_for(export, settings),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.ALLOW_ALL, catchup_window=CATCHUP_WINDOW),
        state=ScheduleState(paused=export.paused, note="paused through the API" if export.paused else None),
    )


async def start_interval_run(client: Client, settings: Settings, export: BatchExport, interval: DataInterval) -> bool:
    """Start the run of one interval as its scheduled run would be (same id, options, search attributes), for a
    gap the schedule left or a fire handed over; False when that id is running already."""
    try:
        await client.start_workflow(
            RUN_WORKFLOW,
            RunInputs(
                batch_export_id=str(export.id),
                team_id=export.team_id,
                spec=export.interval_spec,
                data_interval_start=interval.start,
                data_interval_end=interval.end,
            ),
            id=run_workflow_id(str(export.id), interval.end),
            task_queue=settings.task_queue,
            execution_timeout=execution_timeout(export.interval),
            retry_policy=run_retry_policy(settings),
            search_attributes=search_attributes(
                str(export.id),
                export.team_id,
                export.destination_type,
                name=export.name,
                interval=(interval.start, interval.end),
            ),
            static_summary=summary(export),
        )
    except WorkflowAlreadyStartedError:
        return False
    return True


async def create(client: Client, export: BatchExport, settings: Settings) -> dict[str, str]:
    """Create the export's schedule; returns its fingerprints (see `fingerprints`)."""
    handle = await client.create_schedule(
        str(export.id),
        schedule_for(export, settings),
        memo=memo(export),
        search_attributes=schedule_search_attributes(export),
    )
    return fingerprints(export, settings, await handle.describe())


async def sync(client: Client, export: BatchExport, settings: Settings) -> dict[str, str]:
    """Make the export's schedule say what the export says: replace it, or create it when missing.

    Returns the fingerprints of what it should be and of what Temporal now holds, for reconciliation to notice
    a later change made outside the API (or a change of the service's settings).
    """
    schedule = schedule_for(export, settings)

    def replace(_: ScheduleUpdateInput) -> ScheduleUpdate:
        return ScheduleUpdate(schedule=schedule, search_attributes=schedule_search_attributes(export))

    handle = client.get_schedule_handle(str(export.id))
    try:
        await handle.update(replace)
    except RPCError as error:
        if not is_not_found(error):
            raise
        return await create(client, export, settings)
    return fingerprints(export, settings, await handle.describe())


def fingerprints(export: BatchExport, settings: Settings, described: ScheduleDescription) -> dict[str, str]:
    """`desired`: of the schedule the export and the settings call for; `described`: of the spec, action and
    policies Temporal holds (not its paused state, which reconciliation compares on its own)."""
    desired = schedule_for(export, settings)
    desired_text = repr((desired.action, desired.spec, desired.policy))
    held = ScheduleProto()
    held.CopyFrom(described.raw_description.schedule)
    held.ClearField("state")
    return {
        "desired": hashlib.sha256(desired_text.encode()).hexdigest()[:24],
        "described": hashlib.sha256(held.SerializeToString(deterministic=True)).hexdigest()[:24],
    }


async def delete(client: Client, export_id: str) -> None:
    """Delete the export's schedule; one already gone is fine."""
    try:
        await client.get_schedule_handle(export_id).delete()
    except RPCError as error:
        if not is_not_found(error):
            raise


async def ensure_reconciliation(client: Client, settings: Settings) -> None:
    """Start the one long-lived reconciliation workflow unless it runs (it continues as new, so the workflow list
    holds one row of it, not one a minute); remove the schedule that ran it before."""
    with contextlib.suppress(RPCError):
        await client.get_schedule_handle(RECONCILE_WORKFLOW_ID).delete()
    await client.start_workflow(
        RECONCILE_WORKFLOW,
        ReconcileInputs(every_seconds=settings.reconcile_every_seconds),
        id=RECONCILE_WORKFLOW_ID,
        task_queue=settings.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        static_summary="Reconcile batch-export runs and schedules with Temporal",
    )


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
