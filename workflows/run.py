"""The run workflow: one execution exports one data interval of one batch export.

It records itself (`Starting`), waits for its interval to settle, has the export activity move the
data (`Running`), and records how it ended (`Completed`, `Failed` or `Cancelled`).
"""

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from activities.bookkeeping import Bookkeeping
    from activities.export import Exporter
    from batch_exports.runs import RunStatus
    from batch_exports.temporal import DATA_INTERVAL_END, DATA_INTERVAL_START, SCHEDULED_START_TIME
    from workflows.inputs import ExportInputs, ExportResult, FinishRunInputs, RunInputs, StartRunInputs
    from workflows.intervals import Interval, interval_ending_at

BOOKKEEPING_TIMEOUT = timedelta(seconds=30)
BOOKKEEPING_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
EXPORT_HEARTBEAT_TIMEOUT = timedelta(seconds=20)
EXPORT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=10), maximum_interval=timedelta(minutes=2), maximum_attempts=10
)


def export_timeout(interval: Interval) -> timedelta:
    """How long one export attempt may take: the interval's length, at least ten minutes, at most a day."""
    return min(max(interval.nominal, timedelta(minutes=10)), timedelta(days=1))


@workflow.defn(name="batch-export-run")
class RunBatchExportWorkflow:
    @workflow.run
    async def run(self, inputs: RunInputs) -> ExportResult:
        interval_kind = Interval(inputs.interval)
        end = inputs.data_interval_end or workflow.info().typed_search_attributes.get(SCHEDULED_START_TIME)
        if end is None:
            raise ApplicationError(
                "a run needs data_interval_end when it is not started by a schedule", non_retryable=True
            )
        interval = interval_ending_at(end, interval_kind, inputs.timezone)
        workflow.upsert_search_attributes(
            [DATA_INTERVAL_START.value_set(interval.start), DATA_INTERVAL_END.value_set(interval.end)]
        )
        info = workflow.info()
        started = await workflow.execute_activity_method(
            Bookkeeping.start_run,
            StartRunInputs(
                batch_export_id=inputs.batch_export_id,
                workflow_id=info.workflow_id,
                workflow_run_id=info.run_id,
                data_interval_start=interval.start,
                data_interval_end=interval.end,
                backfill_id=inputs.backfill_id,
            ),
            start_to_close_timeout=BOOKKEEPING_TIMEOUT,
            retry_policy=BOOKKEEPING_RETRY,
        )
        try:
            settle_until = interval.end + timedelta(seconds=started.settle_delay_seconds)
            if (wait := settle_until - workflow.now()) > timedelta(0):
                await workflow.sleep(wait)
            result = await workflow.execute_activity_method(
                Exporter.export_interval,
                ExportInputs(
                    run_id=started.run_id,
                    batch_export_id=inputs.batch_export_id,
                    data_interval_start=interval.start,
                    data_interval_end=interval.end,
                ),
                start_to_close_timeout=export_timeout(interval_kind),
                heartbeat_timeout=EXPORT_HEARTBEAT_TIMEOUT,
                retry_policy=EXPORT_RETRY,
            )
        except (Exception, asyncio.CancelledError) as error:
            cancelled = is_cancelled_exception(error)
            await self._finish(
                FinishRunInputs(
                    run_id=started.run_id,
                    batch_export_id=inputs.batch_export_id,
                    team_id=inputs.team_id,
                    status=RunStatus.CANCELLED if cancelled else RunStatus.FAILED,
                    latest_error="Cancelled" if cancelled else _describe(error),
                )
            )
            raise
        await self._finish(
            FinishRunInputs(
                run_id=started.run_id,
                batch_export_id=inputs.batch_export_id,
                team_id=inputs.team_id,
                status=RunStatus.COMPLETED,
                records_completed=result.records_completed,
                bytes_exported=result.bytes_exported,
            )
        )
        return result

    async def _finish(self, inputs: FinishRunInputs) -> None:
        await workflow.execute_activity_method(
            Bookkeeping.finish_run, inputs, start_to_close_timeout=BOOKKEEPING_TIMEOUT, retry_policy=BOOKKEEPING_RETRY
        )


def _describe(error: BaseException) -> str:
    """The message a person can act on: the activity's own error, not Temporal's wrapper."""
    while isinstance(error, ActivityError) and error.cause is not None:
        error = error.cause
    return str(error) or type(error).__name__
