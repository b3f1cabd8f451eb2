"""The run workflow: one execution exports one data interval (or one segment of it) of one batch export.

It records itself (`Starting`), waits for its interval to settle, has the export activity move the
data (`Running`), and records how it ended:

- `Completed`: the interval (or the rest of it) is in the destination;
- `ContinuedAsNew`: it reached its record limit; the next execution resumes from `cursor`;
- `Cancelled`: cancelled through the API, the CLI or the UI;
- `FailedRetryable`: it failed and Temporal will execute the run again (the schedule's retry policy);
- `Failed`: it failed and nothing will retry it (a user's error, or the last attempt).

`Terminated` and `TimedOut` end an execution without letting it speak; reconciliation records them.
"""

import asyncio
from dataclasses import replace
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from activities.export import Exporter
    from activities.runs import RunBookkeeping
    from contracts.intervals import interval_ending_at
    from contracts.search_attributes import DATA_INTERVAL_END, DATA_INTERVAL_START, SCHEDULED_START_TIME
    from contracts.statuses import RunStatus
    from contracts.timeouts import export_timeout
    from contracts.workflows import (
        RUN_WORKFLOW,
        ExportInputs,
        ExportResult,
        FinishRunInputs,
        RunInputs,
        StartedRun,
        StartRunInputs,
    )

BOOKKEEPING_TIMEOUT = timedelta(seconds=30)
BOOKKEEPING_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
EXPORT_HEARTBEAT_TIMEOUT = timedelta(seconds=20)


@workflow.defn(name=RUN_WORKFLOW)
class RunBatchExportWorkflow:
    @workflow.run
    async def run(self, inputs: RunInputs) -> ExportResult | None:
        end = inputs.data_interval_end or workflow.info().typed_search_attributes.get(SCHEDULED_START_TIME)
        if end is None:
            raise ApplicationError("a run needs data_interval_end when no schedule starts it", non_retryable=True)
        start = inputs.data_interval_start
        if start is None:  # started by the schedule: find the interval, and show it to operators
            start = interval_ending_at(end, inputs.spec).start
            workflow.upsert_search_attributes([DATA_INTERVAL_START.value_set(start), DATA_INTERVAL_END.value_set(end)])
        info = workflow.info()
        started: StartedRun = await workflow.execute_local_activity_method(
            RunBookkeeping.start_run,
            StartRunInputs(
                batch_export_id=inputs.batch_export_id,
                workflow_id=info.workflow_id,
                workflow_run_id=info.run_id,
                data_interval_start=start,
                data_interval_end=end,
                backfill_id=inputs.backfill_id,
                cursor=inputs.cursor,
            ),
            start_to_close_timeout=BOOKKEEPING_TIMEOUT,
            retry_policy=BOOKKEEPING_RETRY,
        )
        finish = FinishRunInputs(
            run_id=started.run_id,
            batch_export_id=inputs.batch_export_id,
            team_id=inputs.team_id,
            status=RunStatus.STARTING,
        )
        try:
            if (wait := end + timedelta(seconds=started.settle_delay_seconds) - workflow.now()) > timedelta(0):
                await workflow.sleep(wait)
            result = await workflow.execute_activity_method(
                Exporter.export_interval,
                ExportInputs(
                    run_id=started.run_id,
                    batch_export_id=inputs.batch_export_id,
                    data_interval_start=start,
                    data_interval_end=end,
                    cursor=inputs.cursor,
                    first_file=inputs.first_file,
                    max_records=started.max_records_per_execution,
                ),
                start_to_close_timeout=export_timeout(inputs.spec.interval),
                heartbeat_timeout=EXPORT_HEARTBEAT_TIMEOUT,
                # The run is recorded Cancelled only once the export has stopped writing.
                cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=started.export_retry_initial_seconds),
                    maximum_interval=timedelta(minutes=2),
                    maximum_attempts=started.export_max_attempts,
                ),
            )
        except (Exception, asyncio.CancelledError) as error:
            status = _failure_status(error)
            await self._finish(replace(finish, status=status, latest_error=_describe(error)))
            if status is RunStatus.FAILED and not is_cancelled_exception(error):
                raise ApplicationError(_describe(error), type="RunFailed", non_retryable=True) from error
            raise
        if result.cursor is not None:
            await self._finish(
                replace(
                    finish,
                    status=RunStatus.CONTINUED_AS_NEW,
                    records_completed=result.records_completed,
                    bytes_exported=result.bytes_exported,
                    cursor=result.cursor,
                )
            )
            workflow.continue_as_new(
                replace(
                    inputs,
                    data_interval_start=start,
                    data_interval_end=end,
                    cursor=result.cursor,
                    first_file=inputs.first_file + result.files,
                )
            )
        await self._finish(
            replace(
                finish,
                status=RunStatus.COMPLETED,
                records_completed=result.records_completed,
                bytes_exported=result.bytes_exported,
            )
        )
        return result

    async def _finish(self, inputs: FinishRunInputs) -> None:
        await workflow.execute_local_activity_method(
            RunBookkeeping.finish_run,
            inputs,
            start_to_close_timeout=BOOKKEEPING_TIMEOUT,
            retry_policy=BOOKKEEPING_RETRY,
        )


def _failure_status(error: BaseException) -> RunStatus:
    """Cancelled, FailedRetryable while the run's retry policy will execute it again, else Failed."""
    if is_cancelled_exception(error):
        return RunStatus.CANCELLED
    cause = error.cause if isinstance(error, ActivityError) else error
    if isinstance(cause, ApplicationError) and cause.non_retryable:
        return RunStatus.FAILED
    info = workflow.info()
    maximum = info.retry_policy.maximum_attempts if info.retry_policy else 1
    return RunStatus.FAILED_RETRYABLE if maximum == 0 or info.attempt < maximum else RunStatus.FAILED


def _describe(error: BaseException) -> str:
    """The message a person can act on: the activity's own error, not Temporal's wrapper."""
    if is_cancelled_exception(error):
        return "Cancelled"
    while isinstance(error, ActivityError) and error.cause is not None:
        error = error.cause
    return str(error) or type(error).__name__
