"""The Temporal Schedule of a batch export: its id is the export's id, its action the run workflow.

Calendar specs in the export's timezone make day and week boundaries follow local midnight and DST.
"""

from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleCalendarSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from batch_exports.exports import BatchExport
from batch_exports.settings import Settings
from batch_exports.temporal import BATCH_EXPORT_ID, DESTINATION_TYPE, TEAM_ID
from workflows.inputs import RunInputs
from workflows.intervals import Interval
from workflows.run import RunBatchExportWorkflow

CATCHUP_WINDOW = timedelta(days=1)
"""Runs missed while the cluster was down for less than this are still started when it returns."""

_EVERY_HOUR = (ScheduleRange(0, 23),)


def calendar_for(export: BatchExport) -> ScheduleCalendarSpec:
    match export.interval:
        case Interval.EVERY_5_MINUTES | Interval.EVERY_15_MINUTES:
            step = int(export.interval.nominal.total_seconds() // 60)
            return ScheduleCalendarSpec(minute=(ScheduleRange(0, 59, step),), hour=_EVERY_HOUR)
        case Interval.HOUR:
            return ScheduleCalendarSpec(hour=_EVERY_HOUR)
        case Interval.DAY:
            return ScheduleCalendarSpec(hour=(ScheduleRange(export.offset_hour or 0),))
        case Interval.WEEK:
            return ScheduleCalendarSpec(
                hour=(ScheduleRange(export.offset_hour or 0),),
                day_of_week=(ScheduleRange(export.offset_day or 0),),
            )


def summary(export: BatchExport) -> str:
    """What an operator reads in the Temporal UI."""
    return f"{export.name}: {export.model} to {export.destination_type.value}, {export.interval.value}"


def schedule_for(export: BatchExport, settings: Settings) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            RunBatchExportWorkflow.run,
            RunInputs(
                batch_export_id=str(export.id),
                team_id=export.team_id,
                interval=export.interval.value,
                timezone=export.timezone,
            ),
            id=str(export.id),
            task_queue=settings.task_queue,
            typed_search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(BATCH_EXPORT_ID, str(export.id)),
                    SearchAttributePair(TEAM_ID, export.team_id),
                    SearchAttributePair(DESTINATION_TYPE, export.destination_type.value),
                ]
            ),
            static_summary=summary(export),
        ),
        spec=ScheduleSpec(
            calendars=[calendar_for(export)],
            time_zone_name=export.timezone,
            start_at=export.start_at,
            end_at=export.end_at,
            jitter=export.interval.jitter if settings.jitter_enabled else None,
        ),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.ALLOW_ALL, catchup_window=CATCHUP_WINDOW),
        state=ScheduleState(paused=export.paused, note="paused through the API" if export.paused else None),
    )


async def create(client: Client, export: BatchExport, settings: Settings) -> None:
    await client.create_schedule(str(export.id), schedule_for(export, settings))
