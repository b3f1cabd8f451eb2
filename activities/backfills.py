"""Bookkeeping of backfills: their row moves from `Starting` to `Running` to how they ended.

Adapters of the run domain's backfill rules (`batch_exports.runs.backfills`): decode, call, encode."""

import asyncio
import contextlib
import uuid
from datetime import datetime

from temporalio import activity
from temporalio.client import WorkflowExecutionStatus
from temporalio.exceptions import ApplicationError

from batch_exports.runs import backfills as rules
from batch_exports.runs.run import Backfill
from batch_exports.runtime import Runtime
from batch_exports.services import backfills as backfilling
from batch_exports.temporal.client import TemporalUnavailable, cancel_workflow
from contracts.workflows import CancelRunsInputs, FinishBackfillInputs, IntervalRunsInputs, StartBackfillInputs

WAIT_POLL_SECONDS = 2.0


class BackfillBookkeeping:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    @activity.defn(name="start-backfill")
    async def start_backfill(self, inputs: StartBackfillInputs) -> None:
        """Mark the backfill Running, with how many runs and (an estimate of) how many records it has."""

        async def count(backfill: Backfill) -> int | None:
            return await backfilling.count_records(self.rt, backfill)

        try:
            await rules.start_backfill(self.rt.run_book, uuid.UUID(inputs.backfill_id), inputs.total_runs, count)
        except rules.BackfillNotRecorded as error:  # retried: the request commits its row
            raise ApplicationError(str(error), type="BackfillNotRecorded") from None

    @activity.defn(name="intervals-with-runs")
    async def intervals_with_runs(self, inputs: IntervalRunsInputs) -> list[datetime]:
        """The ends of the intervals in `(after, through]` that have a run (of any status)."""
        export_id = uuid.UUID(inputs.batch_export_id)
        return await rules.intervals_with_runs(self.rt.run_book, export_id, inputs.after, inputs.through)

    @activity.defn(name="finish-backfill")
    async def finish_backfill(self, inputs: FinishBackfillInputs) -> None:
        await rules.finish_backfill(self.rt.run_book, uuid.UUID(inputs.backfill_id), inputs.status)

    @activity.defn(name="cancel-runs")
    async def cancel_runs(self, inputs: CancelRunsInputs) -> None:
        """Cancel the latest execution of each workflow id (one a retry policy is about to start included)."""
        for workflow_id in inputs.workflow_ids:
            with contextlib.suppress(TemporalUnavailable):  # one gone or unreachable: the others still
                await cancel_workflow(self.rt.client, workflow_id, reason=inputs.reason)

    @activity.defn(name="wait-for-workflow")
    async def wait_for_workflow(self, workflow_id: str) -> bool:
        """Wait until the running execution of `workflow_id` (the latest of a continued chain) has closed; True
        when it completed."""
        handle = self.rt.client.get_workflow_handle(workflow_id)
        while (status := (await handle.describe()).status) == WorkflowExecutionStatus.RUNNING:
            activity.heartbeat()
            await asyncio.sleep(WAIT_POLL_SECONDS)
        return status == WorkflowExecutionStatus.COMPLETED
