"""The backfill workflow: run every interval of `[start_at, end_at)` once, oldest first, a few at a time.

Each interval runs as a child run workflow with the id its scheduled run has, so an interval never
runs twice at once: when that id is already running (the schedule got there first, or another
backfill), the backfill waits for it instead of starting a twin, and counts the interval done only if that
execution completed; else it runs the interval itself. Cancelling the backfill cancels
its runs, and it ends `Cancelled` only once they have closed. A run an operator cancels is not a failure.
The backfill ends `Failed` (in Temporal and in the API alike) when a run failed, else `Completed`. With
`missing_only` it runs only the intervals that have no run yet. It continues as new every few hundred
intervals to keep its history short; its current details say how far it got.
"""

import asyncio
from dataclasses import replace
from datetime import datetime, timedelta
from itertools import pairwise

from temporalio import workflow
from temporalio.common import RetryPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import (
    ApplicationError,
    ChildWorkflowError,
    WorkflowAlreadyStartedError,
    is_cancelled_exception,
)

with workflow.unsafe.imports_passed_through():
    from activities.backfills import BackfillBookkeeping
    from batch_exports.runs.statuses import backfill_ended, backfill_stopped
    from contracts.intervals import DataInterval, boundaries, run_workflow_id
    from contracts.search_attributes import search_attributes
    from contracts.statuses import BackfillStatus
    from contracts.timeouts import execution_timeout
    from contracts.workflows import (
        BACKFILL_WORKFLOW,
        BackfillInputs,
        BackfillResult,
        CancelRunsInputs,
        FinishBackfillInputs,
        IntervalRunsInputs,
        RunInputs,
        StartBackfillInputs,
    )
    from workflows.run import RunBatchExportWorkflow

BOOKKEEPING_TIMEOUT = timedelta(seconds=30)
BOOKKEEPING_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_attempts=20)
HELD_ID_ATTEMPTS = 3
"""How often an interval whose id another execution holds is waited for and tried again before it counts failed."""
RUNS_PER_EXECUTION = 500
"""Intervals one execution starts before it continues as new."""


@workflow.defn(name=BACKFILL_WORKFLOW)
class BackfillWorkflow:
    def __init__(self) -> None:
        self.total = self.finished = self.failed = self.cancelled = 0
        self._running: dict[datetime, str] = {}
        """The workflow id of each interval whose run is under way, by interval end."""

    @workflow.run
    async def run(self, inputs: BackfillInputs) -> BackfillResult:
        spec = inputs.spec
        self.finished, self.failed, self.cancelled = inputs.finished_runs, inputs.failed_runs, inputs.cancelled_runs
        ends = [inputs.start_at, inputs.end_at] if inputs.single_interval else None
        self.total = 1 if ends else sum(1 for _ in pairwise(boundaries(spec, inputs.start_at, inputs.end_at)))
        self._show()
        running: list[asyncio.Task[None]] = []  # a list: a replay must see the same order
        try:
            if inputs.resume_from is None:
                await workflow.execute_local_activity_method(
                    BackfillBookkeeping.start_backfill,
                    StartBackfillInputs(backfill_id=inputs.backfill_id, total_runs=self.total),
                    start_to_close_timeout=BOOKKEEPING_TIMEOUT,
                    retry_policy=BOOKKEEPING_RETRY,
                )
            first = inputs.resume_from or inputs.start_at
            have: set[datetime] = set()
            if inputs.missing_only:
                have = set(
                    await workflow.execute_local_activity_method(
                        BackfillBookkeeping.intervals_with_runs,
                        IntervalRunsInputs(inputs.batch_export_id, first, inputs.end_at),
                        start_to_close_timeout=BOOKKEEPING_TIMEOUT,
                        retry_policy=BOOKKEEPING_RETRY,
                    )
                )
            intervals = pairwise(ends or boundaries(spec, first, inputs.end_at))
            for started, (start, end) in enumerate(intervals, start=1):
                if end in have:  # it has a run: nothing to export again
                    self.finished += 1
                    continue
                while len(running) >= inputs.concurrency:
                    done, _ = await workflow.wait(running, return_when=asyncio.FIRST_COMPLETED)
                    for task in [t for t in running if t in done]:
                        running.remove(task)
                        task.result()
                running.append(asyncio.create_task(self._run_interval(inputs, DataInterval(start, end))))
                if started >= RUNS_PER_EXECUTION or workflow.info().is_continue_as_new_suggested():
                    await self._drain(running)
                    workflow.continue_as_new(
                        replace(
                            inputs,
                            resume_from=end,
                            finished_runs=self.finished,
                            failed_runs=self.failed,
                            cancelled_runs=self.cancelled,
                        )
                    )
            await self._drain(running)
        except (Exception, asyncio.CancelledError) as error:
            if not is_cancelled_exception(error):
                await self._finish(inputs, backfill_stopped(cancelled=False))
                raise
            if running:  # cancel the runs, and wait until they have closed
                # By workflow id, so that the execution a retry policy is about to start is cancelled too (a
                # child's own cancel names its first execution, which may have failed already).
                await workflow.execute_local_activity_method(
                    BackfillBookkeeping.cancel_runs,
                    CancelRunsInputs(workflow_ids=list(self._running.values()), reason="the backfill was cancelled"),
                    start_to_close_timeout=BOOKKEEPING_TIMEOUT,
                    retry_policy=BOOKKEEPING_RETRY,
                )
                for task in running:
                    task.cancel()
                await workflow.wait(running)
            await self._finish(inputs, backfill_stopped(cancelled=True))
            raise
        status = backfill_ended(failed_runs=self.failed)
        await self._finish(inputs, status)
        if status is BackfillStatus.FAILED:
            raise ApplicationError(
                f"{self.failed} of {self.total} runs failed; retry them from the API (runs/{{id}}/retry/)",
                type="BackfillRunsFailed",
                non_retryable=True,
            )
        return BackfillResult(runs=self.finished, failed=self.failed, cancelled=self.cancelled)

    def _show(self) -> None:
        cancelled = f", {self.cancelled} cancelled" if self.cancelled else ""
        workflow.set_current_details(f"{self.finished} of {self.total} runs done, {self.failed} failed{cancelled}")

    async def _run_interval(self, inputs: BackfillInputs, interval: DataInterval) -> None:
        workflow_id = run_workflow_id(inputs.batch_export_id, interval.end)
        self._running[interval.end] = workflow_id
        for _ in range(HELD_ID_ATTEMPTS):
            try:
                await self._run_child(inputs, interval, workflow_id)
                self.finished += 1
                break
            except WorkflowAlreadyStartedError:
                # The interval is running already: wait for it rather than start a twin; it counts only if it
                # completed (one terminated, failed or cancelled exported nothing for good: run it again).
                completed: bool = await workflow.execute_activity_method(
                    BackfillBookkeeping.wait_for_workflow,
                    workflow_id,
                    start_to_close_timeout=execution_timeout(inputs.spec.interval),
                    heartbeat_timeout=timedelta(seconds=30),
                )
                if completed:
                    self.finished += 1
                    break
            except (ChildWorkflowError, asyncio.CancelledError) as error:
                if is_cancelled_exception(error):  # by an operator, or by cancelling this backfill: not a failure
                    self.cancelled += 1
                else:
                    self.failed += 1
                break
        else:  # its id was taken each time, and each holder ended without completing
            self.failed += 1
        self._running.pop(interval.end, None)
        self._show()

    async def _run_child(self, inputs: BackfillInputs, interval: DataInterval, workflow_id: str) -> None:
        await workflow.execute_child_workflow(
            RunBatchExportWorkflow.run,
            RunInputs(
                batch_export_id=inputs.batch_export_id,
                team_id=inputs.team_id,
                spec=inputs.spec,
                data_interval_start=interval.start,
                data_interval_end=interval.end,
                backfill_id=inputs.backfill_id,
            ),
            id=workflow_id,
            execution_timeout=execution_timeout(inputs.spec.interval),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=inputs.run_retry_initial_seconds),
                maximum_attempts=inputs.run_max_attempts,
            ),
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            parent_close_policy=workflow.ParentClosePolicy.REQUEST_CANCEL,
            search_attributes=search_attributes(
                inputs.batch_export_id,
                inputs.team_id,
                inputs.destination_type,
                name=inputs.batch_export_name or None,
                backfill_id=inputs.backfill_id,
                interval=(interval.start, interval.end),
            ),
            static_summary=f"Backfill run {interval.start.isoformat()} to {interval.end.isoformat()}",
        )

    async def _drain(self, running: list[asyncio.Task[None]]) -> None:
        if running:
            await workflow.wait(running)
            for task in running:
                task.result()
            running.clear()

    async def _finish(self, inputs: BackfillInputs, status: BackfillStatus) -> None:
        self._show()
        await workflow.execute_local_activity_method(
            BackfillBookkeeping.finish_backfill,
            FinishBackfillInputs(backfill_id=inputs.backfill_id, status=status, failed_runs=self.failed),
            start_to_close_timeout=BOOKKEEPING_TIMEOUT,
            retry_policy=BOOKKEEPING_RETRY,
        )
