"""The run workflow: one execution exports one data interval (or one segment of it) of one batch export.

It records itself (`Starting`), waits for its interval to settle, has the export activity move the
data (`Running`), and records how it ended:

- `Completed`: the interval (or the rest of it) is in the destination;
- `ContinuedAsNew`: it reached its record limit; the next execution resumes from `cursor`;
- `Cancelled`: cancelled through the API, the CLI or the UI;
- `FailedRetryable`: it failed and Temporal will execute the run again (the schedule's retry policy);
- `Failed`: it failed and nothing will retry it (a user's error, or the last attempt).

`Terminated` and `TimedOut` end an execution without letting it speak; reconciliation records them.

A schedule's fire at a boundary exports the interval ending there, unless that interval has a run already
(a retry or a gap filled by reconciliation got there first). A fire between boundaries (a trigger by hand, an
extra fire on a DST night) exports nothing itself: it hands the last whole interval to the execution whose
id is that interval's, unless the interval has a run, so two executions never write one interval.
A cancel requested while an attempt fails wins: the run is `Cancelled`, and nothing retries it.

An execution the service did not start (a schedule edited by hand, `temporal schedule update` without `--input`
or `--execution-timeout`) proves it is not a run: without inputs or an execution timeout it fails at once, not
retried, saying so; reconciliation puts the schedule back and runs the interval.
"""

import asyncio
from dataclasses import replace
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import Priority, RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    FailureError,
    is_cancelled_exception,
)

with workflow.unsafe.imports_passed_through():
    from activities.export import Exporter
    from activities.notify import Notifier
    from activities.runs import RunBookkeeping
    from batch_exports.runs.statuses import export_ended, failure_status
    from contracts.intervals import DataInterval, last_whole_interval
    from contracts.search_attributes import (
        BATCH_EXPORT_NAME,
        DATA_INTERVAL_END,
        DATA_INTERVAL_START,
        HANDED_OVER,
        SCHEDULED_START_TIME,
    )
    from contracts.sizes import readable_size
    from contracts.statuses import RunStatus
    from contracts.timeouts import export_timeout
    from contracts.workflows import (
        ATTEMPTS_EXHAUSTED,
        EXPORT_PROGRESS_SIGNAL,
        RUN_WORKFLOW,
        ExportInputs,
        ExportProgress,
        ExportResult,
        FinishRunInputs,
        HandOverInputs,
        NotifyInputs,
        RunInputs,
        RunResult,
        StartedRun,
        StartRunInputs,
        fairness_key,
    )

BOOKKEEPING_TIMEOUT = timedelta(seconds=30)
BOOKKEEPING_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
NOTIFY_TIMEOUT = timedelta(seconds=60)
NOTIFY_HEARTBEAT_TIMEOUT = timedelta(seconds=30)
NOTIFY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5), maximum_interval=timedelta(minutes=1), maximum_attempts=5
)


@workflow.defn(name=RUN_WORKFLOW)
class RunBatchExportWorkflow:
    def __init__(self) -> None:
        self._exporting = ""

    @workflow.signal(name=EXPORT_PROGRESS_SIGNAL)
    def export_progress(self, progress: ExportProgress) -> None:
        """The export activity's progress, shown as the run's current details."""
        if self._exporting:
            workflow.set_current_details(
                f"{self._exporting}: {progress.records:,} records, {readable_size(progress.bytes)} so far"
            )

    @workflow.run
    async def run(self, inputs: RunInputs | None = None) -> RunResult:
        info = workflow.info()
        if inputs is None or not info.execution_timeout:
            raise ApplicationError(_not_a_run(inputs), type="NotStartedByTheService", non_retryable=True)
        fired = inputs.data_interval_end or info.typed_search_attributes.get(SCHEDULED_START_TIME)
        if fired is None:
            raise ApplicationError("a run needs data_interval_end when no schedule starts it", non_retryable=True)
        scheduled = inputs.data_interval_start is None
        if scheduled:  # started by the schedule (or a trigger): find the interval, and show it to operators
            interval = last_whole_interval(inputs.spec, fired)
            if interval.end != fired:
                return await self._hand_over(inputs, interval, fired)
            workflow.upsert_search_attributes(
                [DATA_INTERVAL_START.value_set(interval.start), DATA_INTERVAL_END.value_set(interval.end)]
            )
        else:
            interval = DataInterval(inputs.data_interval_start or fired, fired)
        started = await self._start(inputs, interval, fresh_fire=scheduled)
        if started.already_run_by:
            note = f"The interval already has a run ({started.already_run_by}): nothing exported again"
            workflow.set_current_details(note)
            return RunResult(interval.start, interval.end, note=note)
        finish = FinishRunInputs(started.run_id, inputs.batch_export_id, inputs.team_id, RunStatus.STARTING)
        try:
            result = await self._export(inputs, interval, started)
        except (Exception, asyncio.CancelledError) as error:
            raise await self._failed(finish, error)  # noqa: B904 (its cause is set: the export's error)
        self._exporting = ""
        done = f"{result.records_completed:,} records, {readable_size(result.bytes_exported)} exported"
        ended = replace(
            finish,
            status=export_ended(result.cursor),
            records_completed=result.records_completed,
            bytes_exported=result.bytes_exported,
        )
        if result.cursor is not None:
            workflow.set_current_details(f"{done}; continuing as new after {result.cursor}")
            if not result.ended:
                await self._finish(replace(ended, cursor=result.cursor))
            workflow.continue_as_new(
                replace(
                    inputs,
                    data_interval_start=interval.start,
                    data_interval_end=interval.end,
                    cursor=result.cursor,
                    first_file=inputs.first_file + result.files,
                )
            )
        workflow.set_current_details(f"Completed: {done}")
        # The export recorded the end itself (or an export activity of before this change, or books out of reach,
        # left it to this local activity: histories recorded before it replay as they ran).
        await self._notify(finish, result.notice if result.ended else await self._finish(ended))
        return RunResult(interval.start, interval.end, result.records_completed, result.bytes_exported)

    async def _start(self, inputs: RunInputs, interval: DataInterval, *, fresh_fire: bool) -> StartedRun:
        """Record the execution (or learn that its interval has a run already)."""
        info = workflow.info()
        reset = info.run_id != info.original_execution_run_id and info.continued_run_id is None
        started: StartedRun = await workflow.execute_local_activity_method(
            RunBookkeeping.start_run,
            StartRunInputs(
                batch_export_id=inputs.batch_export_id,
                workflow_id=info.workflow_id,
                workflow_run_id=info.run_id,
                data_interval_start=interval.start,
                data_interval_end=interval.end,
                backfill_id=inputs.backfill_id,
                cursor=inputs.cursor,
                fresh_fire=fresh_fire and info.attempt == 1 and not reset,
                reset_from=reset,
            ),
            start_to_close_timeout=BOOKKEEPING_TIMEOUT,
            retry_policy=BOOKKEEPING_RETRY,
        )
        return started

    async def _export(self, inputs: RunInputs, interval: DataInterval, started: StartedRun) -> ExportResult:
        """Wait for the interval to settle, then have the export activity move its data."""
        start, end = interval.start, interval.end
        span = f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"
        if (wait := end + timedelta(seconds=started.settle_delay_seconds) - workflow.now()) > timedelta(0):
            workflow.set_current_details(f"Waiting {wait.total_seconds():.0f} s for {span} to settle")
            await workflow.sleep(wait, summary="the interval settles")
        self._exporting = f"Exporting {span}"
        workflow.set_current_details(self._exporting)
        result: ExportResult = await workflow.execute_activity_method(
            Exporter.export_interval,
            ExportInputs(
                run_id=started.run_id,
                batch_export_id=inputs.batch_export_id,
                data_interval_start=start,
                data_interval_end=end,
                cursor=inputs.cursor,
                first_file=inputs.first_file,
                max_records=started.max_records_per_execution,
                max_attempts=started.export_max_attempts,
                record_end=True,  # a result that says `ended` needs no finish-run local activity
            ),
            start_to_close_timeout=export_timeout(inputs.spec.interval),
            heartbeat_timeout=timedelta(seconds=started.export_heartbeat_timeout_seconds),
            # The run is recorded Cancelled only once the export has stopped writing.
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            # The export counts its attempts: one that gave its slot back to its project's cap does not count.
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=started.export_retry_initial_seconds),
                maximum_interval=timedelta(minutes=2),
                non_retryable_error_types=[ATTEMPTS_EXHAUSTED],
            ),
            priority=Priority(fairness_key=fairness_key(inputs.team_id)),
            summary=f"export {span}",
        )
        return result

    async def _failed(self, finish: FinishRunInputs, error: BaseException) -> BaseException:
        """Record how the failed (or cancelled) export ends the run; what the run raises."""
        self._exporting = ""
        if workflow.cancellation_reason() is not None and not is_cancelled_exception(error):
            error = CancelledError("cancel requested while the export failed: the cancel wins")
        status, message = _failure_status(error), _describe(error)
        workflow.set_current_details(f"{status.value}: {message}")
        await self._notify(finish, await self._finish(replace(finish, status=status, latest_error=message)))
        if is_cancelled_exception(error):
            return error
        # The destination's own words, in Temporal too (not the "Activity task failed" wrapper).
        failure = ApplicationError(message, type="RunFailed", non_retryable=status is RunStatus.FAILED)
        failure.__cause__, failure.__suppress_context__ = error, True  # as `raise ... from error`
        return failure

    async def _hand_over(self, inputs: RunInputs, interval: DataInterval, fired: datetime) -> RunResult:
        # Its row in the UI's list sits beside the run it starts: its name column says it exports nothing.
        if workflow.patched("hand-over-named"):  # hand-overs started before it replay as they ran
            name = workflow.info().typed_search_attributes.get(BATCH_EXPORT_NAME)
            workflow.upsert_search_attributes([BATCH_EXPORT_NAME.value_set(f"{name or ''} {HANDED_OVER}".lstrip())])
        note: str = await workflow.execute_local_activity_method(
            RunBookkeeping.hand_over,
            HandOverInputs(inputs.batch_export_id, interval.start, interval.end, fired),
            start_to_close_timeout=BOOKKEEPING_TIMEOUT,
            retry_policy=BOOKKEEPING_RETRY,
        )
        workflow.set_current_details(note)
        return RunResult(interval.start, interval.end, note=note)

    async def _finish(self, inputs: FinishRunInputs) -> str | None:
        """Record how the run ended; the notice that calls for, if any."""
        notice: str | None = await workflow.execute_local_activity_method(
            RunBookkeeping.finish_run,
            inputs,
            start_to_close_timeout=BOOKKEEPING_TIMEOUT,
            retry_policy=BOOKKEEPING_RETRY,
        )
        return notice

    async def _notify(self, finish: FinishRunInputs, kind: str | None) -> None:
        """Tell the project's notification targets (retried a few times; a notice not sent fails no run)."""
        if kind is None:
            return
        try:
            await workflow.execute_activity_method(
                Notifier.notify,
                NotifyInputs(finish.batch_export_id, finish.run_id, kind),
                start_to_close_timeout=NOTIFY_TIMEOUT,
                heartbeat_timeout=NOTIFY_HEARTBEAT_TIMEOUT,  # after each target (each one bounded to 10 s)
                retry_policy=NOTIFY_RETRY,
                summary=f"notify: {kind}",
            )
        except ActivityError as error:
            workflow.logger.warning("the %s notice was not sent: %s", kind, _describe(error))


def _not_a_run(inputs: RunInputs | None) -> str:
    missing = "no inputs" if inputs is None else "no execution timeout"
    return (
        f"Not started by the service: this execution has {missing}, so its schedule was edited by hand (`temporal "
        "schedule update` without --input and --execution-timeout) or it was started by hand. It exports nothing; "
        "reconciliation puts the export's schedule back and runs the interval"
    )


def _failure_status(error: BaseException) -> RunStatus:
    """Cancelled, FailedRetryable while the run's retry policy will execute it again, else Failed."""
    cause = error.cause if isinstance(error, ActivityError) else error
    info = workflow.info()
    return failure_status(
        cancelled=is_cancelled_exception(error),
        non_retryable=isinstance(cause, ApplicationError) and cause.non_retryable,
        attempt=info.attempt,
        maximum_attempts=info.retry_policy.maximum_attempts if info.retry_policy else 1,
    )


def _describe(error: BaseException) -> str:
    """The message a person can act on: the activity's own error, not Temporal's wrapper."""
    if is_cancelled_exception(error):
        return "Cancelled"
    while isinstance(error, ActivityError) and error.cause is not None:
        error = error.cause
    if isinstance(error, FailureError) and error.message:
        return error.message
    return str(error) or type(error).__name__
